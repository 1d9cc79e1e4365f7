"""The generate-queue tasks: routing and options, final failures, stale claims."""

from datetime import timedelta

import pytest
from django.utils import timezone

from generation.models import GenerationJob
from generation.services.batches import generation_items_fail, items_claim
from generation.services.jobs import generation_job_create
from generation.services.recovery import generation_items_recover
from generation.tasks import generation_batch_task, generation_recover_task
from pickwise.celery import app
from tests.factories import CampaignFactory, GeneratorFactory, PromptFactory

pytestmark = pytest.mark.django_db


def make_job(seeds=2):
    campaign = CampaignFactory(status="generating")
    PromptFactory(campaign=campaign)
    return generation_job_create(
        campaign=campaign, generators=[GeneratorFactory()], seeds_per_prompt=seeds, gold_count=0
    )


def test_generation_tasks_go_to_the_generate_queue_and_ack_late():
    assert app.amqp.router.route({}, generation_batch_task.name)["queue"].name == "generate"
    # The sweep must not wait behind a long batch on a busy generate worker.
    assert app.amqp.router.route({}, generation_recover_task.name)["queue"].name == "default"
    assert generation_batch_task.acks_late is True
    assert generation_batch_task.max_retries == 5
    assert "generation.recover_stalled" in {
        entry["task"] for entry in app.conf.beat_schedule.values()
    }


def test_a_batch_that_ran_out_of_retries_is_recorded_on_its_items_and_the_job():
    job = make_job()
    ids = list(job.items.values_list("pk", flat=True))
    generation_items_fail(
        job_id=job.pk, item_ids=ids, error="Failed after 5 retries: busy", worker="w"
    )

    job.refresh_from_db()
    assert set(job.items.values_list("status", "error")) == {
        ("failed", "Failed after 5 retries: busy")
    }
    assert job.status == GenerationJob.Status.FAILED


def test_the_sweep_gives_back_only_claims_past_the_timeout(
    settings, django_capture_on_commit_callbacks
):
    settings.PICKWISE_GENERATION_HEARTBEAT_TIMEOUT = 60
    job = make_job(seeds=2)
    generator = job.generators.get()
    old, fresh = job.items.order_by("id")
    items_claim(job=job, generator=generator, item_ids=[old.pk, fresh.pk], worker="w@h")
    job.items.filter(pk=old.pk).update(heartbeat_at=timezone.now() - timedelta(minutes=5))

    with django_capture_on_commit_callbacks(execute=False) as sends:
        counts = generation_items_recover()

    assert counts == {"released": 1, "batches_sent": 1, "jobs_closed": 0}
    assert [send.args for send in sends] == [(job.pk, generator.pk, [old.pk])]
    assert dict(job.items.values_list("pk", "status")) == {old.pk: "pending", fresh.pk: "running"}


def test_the_batch_task_records_its_final_failure_on_the_items():
    job = make_job(seeds=1)
    item = job.items.get()
    generation_batch_task.on_failure(
        TimeoutError("the database kept timing out"),
        "task-id",
        (job.pk, item.generator_id, [item.pk]),
        {},
        None,
    )
    item.refresh_from_db()
    assert (item.status, item.error) == (
        "failed",
        "Failed after 0 retries: the database kept timing out",
    )
