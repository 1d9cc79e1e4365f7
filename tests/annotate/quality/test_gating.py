import pytest

from annotate.models import Assignment, Campaign, Comparison, Judgment, Membership
from annotate.quality.models import GateEvent, RaterStats, Rating
from annotate.quality.rater_stats import stats_compute
from annotate.quality.rules import GOLD_COUNTERS, gold_rate_for
from annotate.quality.services import rater_evaluate, rater_gate_override
from annotate.services.assignments import assignment_next
from annotate.services.gold import gold_build
from annotate.services.judgments import judgment_submit
from pickwise.errors import ApplicationError
from tests.annotate.quality.crowd import always_left, prefers, run_crowd
from tests.factories import UserFactory, annotator, campaign_with_comparisons

pytestmark = pytest.mark.django_db


def _gold_answer(assignment, *, correct: bool) -> dict:
    expected = assignment.comparison.gold_answer["overall"]
    if correct:
        return {"overall": expected}
    wrong = [uid for uid in assignment.presented if uid != expected]
    return {"overall": wrong[0]}


def _answer_gold(campaign, user, *, correct: bool, times: int) -> None:
    for _ in range(times):
        assignment = assignment_next(campaign=campaign, annotator=user)
        assert assignment.is_gold
        judgment_submit(assignment=assignment, answers=_gold_answer(assignment, correct=correct))


def _qualifying_campaign():
    campaign = campaign_with_comparisons(prompts=12, qualification_size=15)
    gold_build(campaign=campaign, count=12)
    return campaign


def test_three_wrong_gold_answers_block_a_qualifying_rater_inside_the_submit():
    campaign = _qualifying_campaign()
    user = annotator(campaign)
    assert Membership.objects.get(user=user).gate_state == "qualifying"
    _answer_gold(campaign, user, correct=False, times=3)
    membership = Membership.objects.get(user=user)
    assert membership.gate_state == "blocked"
    with pytest.raises(ApplicationError) as refused:
        assignment_next(campaign=campaign, annotator=user)
    assert refused.value.code == "blocked"
    event = GateEvent.objects.get(annotator=user)
    assert (event.from_state, event.to_state, event.rule) == ("qualifying", "blocked", "gold_sprt")
    assert event.figures["gold_wrong"] == 3 and event.figures["gold_llr"] < -2.944
    assert Judgment.objects.filter(annotator=user, excluded=False).count() == 0


def test_eight_right_gold_answers_qualify():
    campaign = _qualifying_campaign()
    user = annotator(campaign)
    _answer_gold(campaign, user, correct=True, times=7)
    assert Membership.objects.get(user=user).gate_state == "qualifying"
    _answer_gold(campaign, user, correct=True, times=1)
    assert Membership.objects.get(user=user).gate_state == "active"
    assert GateEvent.objects.get(annotator=user).to_state == "active"
    assert RaterStats.objects.get(annotator=user).gold_correct == 8


def _filled_campaign(prompts: int = 4):
    campaign = campaign_with_comparisons(prompts=prompts, overlap=2)
    first, second = annotator(campaign), annotator(campaign)
    run_crowd(campaign, [(first, prefers("model-a")), (second, prefers("model-a"))])
    assert set(Comparison.objects.values_list("done", "status")) == {(2, "full")}
    return campaign, first, second


def test_a_block_excludes_the_raters_judgments_and_reopens_their_comparisons():
    campaign, first, _ = _filled_campaign()
    admin = UserFactory()
    event = rater_gate_override(
        campaign=campaign, user=first, state="blocked", reason="spam", by=admin
    )
    assert (event.rule, event.by, event.from_state) == ("admin", admin, "active")
    assert event.figures["exclusion"]["comparisons_reopened"] == 4
    assert not Judgment.objects.filter(annotator=first, excluded=False).exists()
    assert not Rating.objects.filter(annotator=first, excluded=False).exists()
    assert set(Comparison.objects.values_list("done", "status")) == {(1, "open")}
    assert Membership.objects.get(user=first).gate_reason == "spam"


def test_unblocking_restores_judgments_where_a_slot_is_free_and_keeps_the_rest_excluded():
    campaign, first, _ = _filled_campaign()
    admin = UserFactory()
    rater_gate_override(campaign=campaign, user=first, state="blocked", reason="spam", by=admin)
    third = annotator(campaign)
    run_crowd(campaign, [(third, prefers("model-a"))], max_rounds=2)  # refills two slots
    event = rater_gate_override(
        campaign=campaign, user=first, state="active", reason="reviewed: fine", by=admin
    )
    assert event.figures["restore"] == {"judgments_restored": 2, "judgments_kept_excluded": 2}
    assert Judgment.objects.filter(annotator=first, excluded=False).count() == 2
    assert Rating.objects.filter(annotator=first, excluded=False).count() == 2
    for comparison in Comparison.objects.all():
        counted = Judgment.objects.filter(comparison=comparison, excluded=False).count()
        assert comparison.done == counted == comparison.wanted == 2
        assert comparison.status == "full"


def test_a_block_expires_the_raters_open_assignments():
    campaign = campaign_with_comparisons(prompts=3, overlap=2)
    user = annotator(campaign)
    held = assignment_next(campaign=campaign, annotator=user)
    rater_gate_override(campaign=campaign, user=user, state="blocked", reason="x", by=UserFactory())
    held.refresh_from_db()
    assert held.state == Assignment.State.EXPIRED
    assert Comparison.objects.get(pk=held.comparison_id).in_flight == 0


def test_an_always_left_rater_is_blocked_by_the_evaluation_enqueued_on_submit(
    django_capture_on_commit_callbacks,
):
    campaign = campaign_with_comparisons(prompts=30, overlap=1)
    user = annotator(campaign)
    with django_capture_on_commit_callbacks() as callbacks:
        run_crowd(campaign, [(user, always_left)], max_rounds=25)
    # Every fifth counted judgment enqueues the heavier rules.
    assert sum(c.func.__self__.name == "quality.rater_evaluate" for c in callbacks) == 5
    verdict = rater_evaluate(campaign=campaign, user=user)
    assert "position_bias" in verdict.block
    membership = Membership.objects.get(user=user)
    assert membership.gate_state == "blocked"
    assert GateEvent.objects.get(annotator=user).figures["pos_sum"] == 25
    with pytest.raises(ApplicationError):
        assignment_next(campaign=campaign, annotator=user)


def test_an_admin_override_holds_against_the_automatic_rules():
    campaign = campaign_with_comparisons(prompts=30, overlap=1)
    user = annotator(campaign)
    admin = UserFactory()
    rater_gate_override(campaign=campaign, user=user, state="warned", reason="watch", by=admin)
    run_crowd(campaign, [(user, always_left)], max_rounds=25)
    assert rater_evaluate(campaign=campaign, user=user) is None
    assert Membership.objects.get(user=user).gate_state == "warned"


@pytest.mark.parametrize(
    ("state", "reason", "code"),
    [("banned", "x", "invalid"), ("blocked", "  ", "invalid"), ("active", "again", "same_state")],
)
def test_an_override_refuses_bad_input(state, reason, code):
    campaign = campaign_with_comparisons(prompts=1)
    user = annotator(campaign)
    with pytest.raises(ApplicationError) as refused:
        rater_gate_override(campaign=campaign, user=user, state=state, reason=reason, by=user)
    assert refused.value.code == code
    assert not GateEvent.objects.exists()


def _post_qualification_campaign():
    # Production gold at 2%: after qualifying, gold keeps coming at confirm_gold_rate (0.3).
    # Enough regular tasks that a rater never runs out before the gold answers are used up:
    # 12 gold at 0.3 take 28 +- 10 regular tasks, and 100 are 7 standard deviations away.
    campaign = campaign_with_comparisons(
        prompts=100, qualification_size=15, gold_rate=0.02, repeat_rate=0.0
    )
    gold_build(campaign=campaign, count=30)
    return campaign


def _work(campaign, user, *, gold_answers: list[bool], max_tasks: int = 200) -> int:
    """Regular tasks answered with a tie, gold answered from `gold_answers` in turn, until
    those run out, the rater is blocked or `max_tasks`; returns the tasks done."""
    pending = list(gold_answers)
    for done in range(max_tasks):
        if not pending:
            return done
        try:
            assignment = assignment_next(campaign=campaign, annotator=user)
        except ApplicationError:
            return done
        assert assignment is not None, f"the campaign ran out of tasks after {done}"
        if assignment.is_gold:
            answers = _gold_answer(assignment, correct=pending.pop(0))
        else:
            answers = {"overall": "tie"}
        judgment_submit(assignment=assignment, answers=answers)
    return max_tasks


def test_a_rater_who_turns_random_after_qualifying_is_blocked_by_gold_since_qualifying():
    campaign = _post_qualification_campaign()
    user = annotator(campaign)
    _answer_gold(campaign, user, correct=True, times=8)
    assert Membership.objects.get(user=user).gate_state == "active"
    # Four misses in a row (-5.55, past the qualified block bound ln 99 = 4.595): the
    # lifetime SPRT (8 right, 4 wrong: LLR -2.30) would not move.
    tasks = _work(campaign, user, gold_answers=[False, False, False, False])
    membership = Membership.objects.get(user=user)
    assert membership.gate_state == "blocked"
    event = GateEvent.objects.get(annotator=user, to_state="blocked")
    assert event.rule == "gold_after_qualifying"
    assert (event.figures["gold_passed_at"], event.figures["post_gold_wrong"]) == (8, 4)
    assert event.figures["post_gold_llr"] <= -4.595 < event.figures["gold_llr"]
    # Gold comes at 30% until the rater confirms, not at the campaign's 2%.
    assert tasks < 60
    stats = RaterStats.objects.get(annotator=user)
    computed = stats_compute(campaign=campaign)[user.pk]
    for name in GOLD_COUNTERS:
        assert getattr(stats, name) == computed[name], name


def test_an_honest_rater_with_a_few_gold_misses_after_qualifying_is_not_blocked():
    campaign = _post_qualification_campaign()
    user = annotator(campaign)
    _answer_gold(campaign, user, correct=True, times=8)
    misses_apart = [False, True, True, True, True, False, True, True, True, True, True, True]
    _work(campaign, user, gold_answers=misses_apart)
    assert Membership.objects.get(user=user).gate_state == "active"
    stats = RaterStats.objects.get(annotator=user)
    assert (stats.post_gold_correct, stats.post_gold_wrong) == (10, 2)
    assert not GateEvent.objects.filter(annotator=user, to_state="blocked").exists()


def test_gold_comes_at_the_confirmation_rate_until_the_sprt_since_qualifying_passes():
    campaign = Campaign(gold_rate=0.02, repeat_rate=0.05)
    assert gold_rate_for(campaign=campaign, gold_passed_at=None) == 0.02
    unconfirmed = {"gold_passed_at": 8, "post_gold_correct": 1, "post_gold_wrong": 0}
    assert gold_rate_for(campaign=campaign, **unconfirmed) == 0.3
    confirmed = {"gold_passed_at": 8, "post_gold_correct": 8, "post_gold_wrong": 0}
    assert gold_rate_for(campaign=campaign, **confirmed) == 0.02
    # A campaign without production gold never gets any; the policy can turn it off.
    assert gold_rate_for(campaign=Campaign(gold_rate=0.0), **unconfirmed) == 0.0
    switched_off = Campaign(gold_rate=0.02, qc_policy={"confirm_gold_rate": 0})
    assert gold_rate_for(campaign=switched_off, **unconfirmed) == 0.02
