"""generation 0003 renames the item's claim fields (claimed_by, claimed_at) to the names every
claimed job shares (worker, heartbeat_at): the values must survive, both ways."""

from datetime import timedelta

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.utils import timezone

from generation.models import GenerationItem
from tests.generation.test_batches import make_job

BEFORE = ("generation", "0002_jobs_and_items")
AFTER = ("generation", "0003_item_claim_names")


def _migrate(target: tuple[str, str]) -> None:
    executor = MigrationExecutor(connection)
    executor.migrate([target])


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_the_rename_of_the_item_claim_fields_keeps_their_values_both_ways():
    job = make_job(prompts=1, generators=1, seeds=2)
    claimed_at = timezone.now() - timedelta(minutes=3)
    item, untouched = job.items.order_by("pk")
    GenerationItem.objects.filter(pk=item.pk).update(
        status="running", worker="celery@gpu-1", heartbeat_at=claimed_at, claim_token="t"
    )
    try:
        _migrate(BEFORE)
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT id, claimed_by, claimed_at FROM generation_generationitem ORDER BY id"
            )
            rows = cursor.fetchall()
    finally:
        _migrate(AFTER)
    assert [(pk, by) for pk, by, _at in rows] == [(item.pk, "celery@gpu-1"), (untouched.pk, "")]
    assert rows[1][2] is None
    # SQLite hands back text for a raw query; compare as the model reads it after the way back.
    after = GenerationItem.objects.get(pk=item.pk)
    assert (after.worker, after.heartbeat_at, after.claim_token) == (
        "celery@gpu-1",
        claimed_at,
        "t",
    )
    assert GenerationItem.objects.get(pk=untouched.pk).heartbeat_at is None
