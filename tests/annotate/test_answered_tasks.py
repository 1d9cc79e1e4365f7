"""An answered task is never offered again as open, and a late second answer is told that the
first answer stands (`first_answer_stands` on the submit's 200).

API contract: POST /api/assignments/{id}/submit/ answers 201 when it stores the answer, and
200 with the stored judgment when the task already had one; `first_answer_stands` is true on
that 200 when the answers sent differ from the stored ones (nothing is stored), false when
they are the same (a resend after a lost response) and false on every 201.
"""

import threading

import pytest
from django.db import connection, transaction

from annotate.models import Assignment, Comparison, Judgment
from annotate.services.assignments import assignment_next, assignment_skip
from annotate.services.gold import gold_build
from annotate.services.judgments import judgment_submit
from tests.factories import annotator, campaign_with_comparisons


def _submit(api_client, assignment_id: int, answers: dict):
    return api_client.post(
        f"/api/assignments/{assignment_id}/submit/", {"answers": answers}, format="json"
    )


def _next(api_client, campaign, exclude=()):
    return api_client.post(
        f"/api/campaigns/{campaign.pk}/next/", {"exclude": list(exclude)}, format="json"
    )


@pytest.mark.django_db
def test_an_answered_task_is_never_handed_out_again_on_reload_or_with_exclude():
    campaign = campaign_with_comparisons(prompts=4, overlap=2)
    user = annotator(campaign)
    seen = set()
    first = assignment_next(campaign=campaign, annotator=user)
    ahead = assignment_next(campaign=campaign, annotator=user, exclude_ids=(first.pk,))
    assert ahead.pk != first.pk
    judgment_submit(assignment=first, answers={"overall": "tie"})
    seen.add(first.comparison_id)
    # A reload (no exclude) and a prefetch that leaves out the reserved task.
    assert assignment_next(campaign=campaign, annotator=user).pk == ahead.pk
    fresh = assignment_next(campaign=campaign, annotator=user, exclude_ids=(ahead.pk,))
    assert fresh.pk not in (first.pk, ahead.pk)
    for task in (ahead, fresh):
        judgment_submit(assignment=task, answers={"overall": "tie"})
        seen.add(task.comparison_id)
    while (task := assignment_next(campaign=campaign, annotator=user)) is not None:
        assert task.comparison_id not in seen and task.state == Assignment.State.OPEN
        seen.add(task.comparison_id)
        judgment_submit(assignment=task, answers={"overall": "tie"})
    assert len(seen) == 4


@pytest.mark.django_db
def test_answered_gold_and_skipped_tasks_do_not_come_back():
    campaign = campaign_with_comparisons(prompts=6, qualification_size=5)
    gold_build(campaign=campaign, count=3)
    user = annotator(campaign)
    met = []
    while (task := assignment_next(campaign=campaign, annotator=user)) is not None:
        assert task.comparison_id not in met
        met.append(task.comparison_id)
        if len(met) % 2:
            assignment_skip(assignment=task)
        else:
            judgment_submit(assignment=task, answers={"overall": task.presented[0]})
    assert len(met) == Comparison.objects.filter(campaign=campaign).count() == 9


@pytest.mark.django_db
def test_a_late_different_answer_gets_200_and_first_answer_stands(api_client):
    campaign = campaign_with_comparisons(prompts=2, overlap=2)
    user = annotator(campaign)
    api_client.force_authenticate(user)
    task = _next(api_client, campaign).json()
    left, right = (image["uid"] for image in task["images"])
    first = _submit(api_client, task["id"], {"overall": left})
    assert first.status_code == 201 and first.json()["first_answer_stands"] is False

    late = _submit(api_client, task["id"], {"overall": right})
    assert late.status_code == 200
    body = late.json()
    assert body["first_answer_stands"] is True
    assert body["id"] == first.json()["id"] and body["answers"] == {"overall": left}
    assert Judgment.objects.get().answers == {"overall": left}
    assert Comparison.objects.get(pk=Judgment.objects.get().comparison_id).done == 1

    resend = _submit(api_client, task["id"], {"overall": left.upper()})
    assert resend.status_code == 200 and resend.json()["first_answer_stands"] is False
    garbage = _submit(api_client, task["id"], {"nonsense": 1})
    assert garbage.status_code == 200 and garbage.json()["first_answer_stands"] is True
    assert Judgment.objects.count() == 1
    # The answered task is not offered again.
    assert _next(api_client, campaign).json()["id"] != task["id"]


@pytest.mark.django_db
def test_a_ranking_resend_with_ties_in_another_order_is_the_same_answer(api_client):
    campaign = campaign_with_comparisons(prompts=1, models=("a", "b", "c"), kind="ranking", k=3)
    user = annotator(campaign)
    api_client.force_authenticate(user)
    task = _next(api_client, campaign).json()
    a, b, c = (image["uid"] for image in task["images"])
    assert _submit(api_client, task["id"], {"overall": [[a, b], [c]]}).status_code == 201
    same = _submit(api_client, task["id"], {"overall": [[b, a], [c]]}).json()
    assert same["first_answer_stands"] is False
    other = _submit(api_client, task["id"], {"overall": [[c], [a, b]]}).json()
    assert other["first_answer_stands"] is True


@pytest.mark.django_db(transaction=True)
def test_a_task_whose_answer_is_being_stored_is_not_handed_out_as_open():
    """Two tabs: one submits (its claim holds the assignment's row) while the other asks
    for its task. The engine must not hand out the task being answered."""
    if connection.vendor != "postgresql":
        pytest.skip("SQLite runs one writer at a time, so the two cannot overlap")
    campaign = campaign_with_comparisons(prompts=3)
    user = annotator(campaign)
    first = assignment_next(campaign=campaign, annotator=user)
    claimed, release = threading.Event(), threading.Event()

    def submit_in_flight():
        try:
            with transaction.atomic():
                Assignment.objects.filter(pk=first.pk).update(state=Assignment.State.SUBMITTED)
                claimed.set()
                release.wait(20)
        finally:
            connection.close()

    other = threading.Thread(target=submit_in_flight)
    other.start()
    try:
        assert claimed.wait(20)
        task = assignment_next(campaign=campaign, annotator=user)
        assert task is not None and task.pk != first.pk
    finally:
        release.set()
        other.join()
