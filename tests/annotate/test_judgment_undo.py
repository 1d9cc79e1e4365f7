"""Undoing a pairwise answer leaves every counter as if it had never been given."""

import random
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from annotate.models import Assignment, Comparison, Judgment
from annotate.quality.models import GateEvent, Rating
from annotate.quality.rater_stats import COUNTERS, stats_compute, stored_counters
from annotate.services.assignments import assignment_next
from annotate.services.gold import gold_build
from annotate.services.judgment_undo import (
    UNDO_GATED,
    UNDO_NOT_ANSWERED,
    UNDO_NOT_LAST,
    UNDO_NOT_PAIRWISE,
    UNDO_TOO_LATE,
    judgment_undo,
)
from annotate.services.judgments import judgment_submit
from pickwise.errors import ApplicationError
from tests.annotate.quality.crowd import (
    always_left,
    models_of,
    prefers,
    random_clicker,
    run_crowd,
)
from tests.factories import annotator, campaign_with_comparisons

pytestmark = pytest.mark.django_db


def _assert_counters_match(campaign) -> None:
    """Stored counters equal the full recompute; a rater whose only judgment was undone
    keeps a row of zeros, which counts the same as no row."""
    computed = stats_compute(campaign=campaign)
    stored = stored_counters(campaign=campaign)
    for annotator_id in set(computed) | set(stored):
        for name in COUNTERS:
            mine = stored.get(annotator_id, {}).get(name, 0)
            assert mine == computed.get(annotator_id, {}).get(name, 0), (annotator_id, name)
        hist = stored.get(annotator_id, {}).get("speed_hist") or []
        assert sum(hist) == sum(computed.get(annotator_id, {}).get("speed_hist") or [])
        if annotator_id in computed:
            assert hist == computed[annotator_id]["speed_hist"], annotator_id


def _comparison_counters(campaign) -> dict[int, tuple[int, int, str]]:
    return {
        c.pk: (c.done, c.in_flight, c.status) for c in Comparison.objects.filter(campaign=campaign)
    }


def _answer(assignment, models, rng) -> dict:
    return random_clicker(assignment, models, rng)


def test_undo_restores_every_counter_for_regular_gold_and_repeat_answers():
    # sprt_bound out of reach: no gate decision follows an answer, so every one may be undone.
    campaign = campaign_with_comparisons(
        prompts=30, overlap=3, gold_rate=0.15, repeat_rate=0.25, qc_policy={"sprt_bound": 1000}
    )
    gold_build(campaign=campaign, count=6)
    choosers = [prefers("model-a"), prefers("model-b"), always_left, random_clicker]
    raters = [(annotator(campaign), chooser) for chooser in choosers]
    run_crowd(campaign, raters, max_rounds=24)  # history: co-raters, gold, repeats due
    models, rng = models_of(campaign), random.Random(7)
    undone = {"regular": 0, "gold": 0, "repeat": 0, "with_co_raters": 0}
    for _ in range(8):
        for user, _chooser in raters:
            assignment = assignment_next(campaign=campaign, annotator=user)
            if assignment is None:
                continue
            counters, comparisons = (
                stored_counters(campaign=campaign),
                _comparison_counters(campaign),
            )
            ratings = Rating.objects.count()
            judgment, _ = judgment_submit(
                assignment=assignment,
                answers=_answer(assignment, models, rng),
                duration_ms=rng.randint(300, 9000),
            )
            kind = "gold" if judgment.is_gold else "repeat" if judgment.is_repeat else "regular"
            undone[kind] += 1
            if (
                kind == "regular"
                and Judgment.objects.filter(
                    comparison_id=judgment.comparison_id, is_gold=False, is_repeat=False
                )
                .exclude(pk=judgment.pk)
                .exists()
            ):
                undone["with_co_raters"] += 1

            reopened = judgment_undo(assignment=assignment)

            assert reopened.state == Assignment.State.OPEN
            assert not Judgment.objects.filter(pk=judgment.pk).exists()
            assert stored_counters(campaign=campaign) == counters, kind
            assert _comparison_counters(campaign) == comparisons, kind
            assert Rating.objects.count() == ratings
            _assert_counters_match(campaign)
            # Answered afresh, as the annotator does after an undo.
            assert assignment_next(campaign=campaign, annotator=user).pk == assignment.pk
            judgment_submit(
                assignment=reopened,
                answers=_answer(assignment, models, rng),
                duration_ms=rng.randint(300, 9000),
            )
            _assert_counters_match(campaign)
    assert undone["gold"] and undone["repeat"] and undone["with_co_raters"], undone


def test_undo_of_an_earlier_rater_takes_back_the_pairs_a_later_one_counted():
    campaign = campaign_with_comparisons(prompts=1, overlap=3)
    first, second, third = (annotator(campaign) for _ in range(3))
    taken = [assignment_next(campaign=campaign, annotator=user) for user in (first, second)]
    before = stored_counters(campaign=campaign)
    judgment_submit(assignment=taken[0], answers={"overall": taken[0].presented[0]}, duration_ms=1)
    judgment_submit(
        assignment=taken[1], answers={"overall": taken[1].presented[0]}, duration_ms=9000
    )
    assert stored_counters(campaign=campaign)[second.pk]["co_pairs"] == 1

    judgment_undo(assignment=taken[0])

    after = stored_counters(campaign=campaign)
    assert after[second.pk]["co_pairs"] == after[second.pk]["co_rated"] == 0
    assert after[first.pk]["judgments"] == 0 and sum(after[first.pk]["speed_hist"]) == 0
    assert before == {}
    comparison = Comparison.objects.get()
    assert (comparison.done, comparison.in_flight) == (1, 1)
    _assert_counters_match(campaign)
    assert assignment_next(campaign=campaign, annotator=third) is not None  # overlap 3: 1+1+1


def test_undo_is_refused_after_the_window():
    campaign = campaign_with_comparisons(prompts=1)
    assignment = assignment_next(campaign=campaign, annotator=annotator(campaign))
    judgment_submit(assignment=assignment, answers={"overall": "tie"}, duration_ms=500)
    with pytest.raises(ApplicationError) as error:
        judgment_undo(assignment=assignment, now=timezone.now() + timedelta(seconds=11))
    assert (error.value.message, error.value.status) == (UNDO_TOO_LATE.format(seconds=10), 409)
    assert Judgment.objects.count() == 1


def test_only_the_last_answer_and_only_an_answered_task_can_be_undone():
    campaign = campaign_with_comparisons(prompts=3)
    user = annotator(campaign)
    first = assignment_next(campaign=campaign, annotator=user)
    judgment_submit(assignment=first, answers={"overall": "tie"}, duration_ms=500)
    second = assignment_next(campaign=campaign, annotator=user)
    with pytest.raises(ApplicationError) as error:
        judgment_undo(assignment=second)
    assert error.value.message == UNDO_NOT_ANSWERED
    judgment_submit(assignment=second, answers={"overall": "tie"}, duration_ms=500)
    with pytest.raises(ApplicationError) as error:
        judgment_undo(assignment=first)
    assert error.value.message == UNDO_NOT_LAST
    judgment_undo(assignment=second)
    with pytest.raises(ApplicationError) as error:  # a second undo finds it open
        judgment_undo(assignment=second)
    assert error.value.code == "assignment_open"


def test_an_answer_a_gate_decision_followed_stands():
    campaign = campaign_with_comparisons(prompts=4, qualification_size=2, gold_rate=0.0)
    gold_build(campaign=campaign, count=2)
    user = annotator(campaign)
    assignment = assignment_next(campaign=campaign, annotator=user)
    judgment_submit(assignment=assignment, answers={"overall": "tie"}, duration_ms=500)
    GateEvent.objects.create(
        campaign=campaign, annotator=user, from_state="qualifying", to_state="active", rule="t"
    )
    with pytest.raises(ApplicationError) as error:
        judgment_undo(assignment=assignment)
    assert error.value.message == UNDO_GATED


def test_rankings_have_no_undo_after_submit():
    campaign = campaign_with_comparisons(
        prompts=1, kind="ranking", k=3, models=("model-a", "model-b", "model-c")
    )
    assignment = assignment_next(campaign=campaign, annotator=annotator(campaign))
    judgment_submit(
        assignment=assignment,
        answers={"overall": [[uid] for uid in assignment.presented]},
        duration_ms=500,
    )
    with pytest.raises(ApplicationError) as error:
        judgment_undo(assignment=assignment)
    assert error.value.message == UNDO_NOT_PAIRWISE


# The API: POST /api/assignments/{id}/undo/ ------------------------------------------------


def _undo_url(assignment_id) -> str:
    return reverse("annotate:undo", args=[assignment_id])


def _answered(api_client, campaign):
    task = api_client.post(reverse("annotate:next", args=[campaign.pk]), {}, format="json").json()
    submitted = api_client.post(
        reverse("annotate:submit", args=[task["id"]]),
        {"answers": {"overall": task["images"][0]["uid"]}, "duration_ms": 1200},
        format="json",
    )
    assert submitted.status_code == 201
    return task


def test_the_author_undoes_over_http_and_gets_the_task_back(api_client):
    campaign = campaign_with_comparisons(prompts=2)
    api_client.force_authenticate(annotator(campaign))
    task = _answered(api_client, campaign)
    response = api_client.post(_undo_url(task["id"]), format="json")
    assert response.status_code == 200
    body = response.json()
    assert body["id"] == task["id"] and body["images"] == task["images"]
    assert Judgment.objects.count() == 0
    again = api_client.post(_undo_url(task["id"]), format="json")  # nothing left to undo
    assert again.status_code == 409 and again.json()["code"] == "assignment_open"
    resubmitted = api_client.post(
        reverse("annotate:submit", args=[task["id"]]),
        {"answers": {"overall": "tie"}, "duration_ms": 800},
        format="json",
    )
    assert resubmitted.status_code == 201
    assert Judgment.objects.get().answers == {"overall": "tie"}


def test_nobody_else_may_undo_and_only_post_is_taken(api_client):
    campaign = campaign_with_comparisons(prompts=2)
    owner, intruder = annotator(campaign), annotator(campaign)
    api_client.force_authenticate(owner)
    task = _answered(api_client, campaign)
    assert api_client.get(_undo_url(task["id"])).status_code == 405
    api_client.force_authenticate(intruder)
    assert api_client.post(_undo_url(task["id"])).status_code == 404
    assert api_client.post(_undo_url(999_999)).status_code == 404
    api_client.force_authenticate(None)
    assert api_client.post(_undo_url(task["id"])).status_code in (401, 403)
    assert Judgment.objects.count() == 1


def test_an_undo_after_the_window_gets_409(api_client):
    campaign = campaign_with_comparisons(prompts=2)
    api_client.force_authenticate(annotator(campaign))
    task = _answered(api_client, campaign)
    Judgment.objects.update(created_at=timezone.now() - timedelta(seconds=30))
    response = api_client.post(_undo_url(task["id"]), format="json")
    assert response.status_code == 409
    assert response.json() == {"detail": UNDO_TOO_LATE.format(seconds=10), "code": "undo_too_late"}
    assert Judgment.objects.count() == 1


def test_an_oversized_undo_body_is_refused(api_client, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1_000
    campaign = campaign_with_comparisons(prompts=2)
    api_client.force_authenticate(annotator(campaign))
    task = _answered(api_client, campaign)
    response = api_client.post(_undo_url(task["id"]), {"pad": "x" * 5_000}, format="json")
    assert response.status_code in (400, 413)
    assert Judgment.objects.count() == 1


def test_an_undo_with_fields_is_refused(api_client):
    campaign = campaign_with_comparisons(prompts=2)
    api_client.force_authenticate(annotator(campaign))
    task = _answered(api_client, campaign)
    response = api_client.post(_undo_url(task["id"]), {"answers": "x"}, format="json")
    assert response.status_code == 400 and response.json()["code"] == "invalid"
    assert Judgment.objects.count() == 1
