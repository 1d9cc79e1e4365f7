"""Many annotators at once, on whichever database the suite runs on (SQLite or PostgreSQL).

Each thread has its own database connection and goes through the real HTTP stack.
"""

import threading
from collections import Counter

import pytest
from django.db import connection, transaction
from django.db.models import F
from rest_framework.test import APIClient

from annotate.models import Assignment, Comparison, Judgment
from annotate.services.assignments import assignment_next
from tests.factories import annotator, campaign_with_comparisons

ANNOTATORS = 8
PROMPTS = 12  # one comparison each (two models)
OVERLAP = 3


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_concurrent_next_and_submit_keep_every_invariant():
    campaign = campaign_with_comparisons(prompts=PROMPTS, overlap=OVERLAP)
    users = [annotator(campaign) for _ in range(ANNOTATORS)]
    acknowledged: list[int] = []
    failures: list[str] = []
    lock = threading.Lock()
    start = threading.Barrier(ANNOTATORS)

    def work(user):
        client = APIClient()
        client.force_authenticate(user)
        try:
            start.wait()
            while True:
                task = client.post(f"/api/campaigns/{campaign.pk}/next/", {}, format="json")
                if task.status_code == 204:
                    return
                if task.status_code != 200:
                    raise AssertionError(f"next: {task.status_code} {task.content[:200]}")
                body = task.json()
                answer = {"overall": body["images"][0]["uid"]}
                # Send twice, as a client retrying after a lost reply would.
                for expected in (201, 200):
                    sent = client.post(
                        f"/api/assignments/{body['id']}/submit/",
                        {"answers": answer, "duration_ms": 500},
                        format="json",
                    )
                    if sent.status_code != expected:
                        raise AssertionError(f"submit: {sent.status_code} {sent.content[:200]}")
                with lock:
                    acknowledged.append(sent.json()["id"])
        except Exception as exc:  # collected and asserted below, so no thread dies silently
            with lock:
                failures.append(repr(exc))
        finally:
            connection.close()

    threads = [threading.Thread(target=work, args=(user,)) for user in users]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)

    assert failures == []
    assert len(acknowledged) == PROMPTS * OVERLAP
    stored = set(Judgment.objects.values_list("id", flat=True))
    assert set(acknowledged) == stored
    assert not Comparison.objects.filter(done__gt=F("wanted")).exists()
    assert set(Comparison.objects.values_list("done", "in_flight")) == {(OVERLAP, 0)}
    pairs = Counter(Judgment.objects.values_list("annotator_id", "comparison_id"))
    assert max(pairs.values()) == 1
    assert not Assignment.objects.filter(state=Assignment.State.OPEN).exists()


@pytest.mark.django_db(transaction=True)
def test_next_waits_for_a_briefly_locked_last_comparison_instead_of_saying_nothing_left():
    if connection.vendor != "postgresql":
        pytest.skip("row locks: SQLite serialises writers instead")
    campaign = campaign_with_comparisons(prompts=1, overlap=2)
    user = annotator(campaign)
    locked, release = threading.Event(), threading.Event()

    def hold_the_row():
        try:
            with transaction.atomic():
                Comparison.objects.select_for_update().get()
                locked.set()
                release.wait(10)
        finally:
            connection.close()

    holder = threading.Thread(target=hold_the_row)
    holder.start()
    assert locked.wait(10)
    threading.Timer(0.5, release.set).start()
    assignment = assignment_next(campaign=campaign, annotator=user)
    holder.join()
    assert assignment is not None
