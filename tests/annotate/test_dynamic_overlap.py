"""Dynamic overlap through the real services, on whichever database the suite runs on.

Each judgment goes through assignment_next and judgment_submit, so the ratings the settling
test reads are the ones the submit stored. Figures in the comments are the one-coin
posteriors of annotate.quality.posterior (a rater without gold: accuracy 3/4, weight log 3).
"""

import threading
from collections import Counter

import pytest
from django.contrib.auth.models import Group
from django.db import IntegrityError, connection, transaction
from django.db.models import F
from rest_framework.test import APIClient

from annotate.models import CONFIDENCE_RANGE, MAX_BELOW_MIN, Assignment, Campaign, Comparison
from annotate.quality.models import RaterStats
from annotate.services.assignments import assignment_next
from annotate.services.campaigns import campaign_create, campaign_update
from annotate.services.judgments import judgment_submit
from tests.factories import CampaignFactory, UserFactory, annotator, campaign_with_comparisons

pytestmark = pytest.mark.django_db


def _dynamic(**fields) -> Campaign:
    settings = {"dynamic_overlap": True, "min_raters": 2, "max_raters": 4, "confidence": 0.95}
    return campaign_with_comparisons(**{"prompts": 1, **settings, **fields})


def _judge(campaign: Campaign, user, *, first: bool | None) -> Comparison:
    """One judgment by `user`: for the comparison's first image (canonical order), the
    second, or a tie (None)."""
    assignment = assignment_next(campaign=campaign, annotator=user)
    assert assignment is not None
    comparison = Comparison.objects.get(pk=assignment.comparison_id)
    uids = [str(image.uid) for image in comparison.images.order_by("id")]
    answer = "tie" if first is None else uids[0 if first else 1]
    judgment_submit(assignment=assignment, answers={"overall": answer}, duration_ms=1500)
    comparison.refresh_from_db()
    return comparison


def test_a_new_comparison_wants_min_raters_and_a_fixed_one_its_overlap():
    assert Comparison.objects.get(campaign=_dynamic()).wanted == 2
    fixed = campaign_with_comparisons(prompts=1, overlap=3)
    assert Comparison.objects.get(campaign=fixed).wanted == 3


def test_raters_who_agree_settle_it_at_the_first_judgment_that_reaches_the_confidence():
    campaign = _dynamic()
    users = [annotator(campaign) for _ in range(4)]
    first = _judge(campaign, users[0], first=True)
    # One judgment: below min_raters, so not settled whatever it says.
    assert (first.done, first.wanted, first.status, first.settled) == (1, 2, "open", False)
    second = _judge(campaign, users[1], first=True)
    # Two agree: 9/10 < 0.95, so one more rater is wanted.
    assert (second.done, second.wanted, second.status, second.settled) == (2, 3, "open", False)
    third = _judge(campaign, users[2], first=True)
    # Three agree: 27/28 = 0.964 >= 0.95: settled, nobody else is asked.
    assert (third.done, third.wanted, third.status, third.settled) == (3, 3, "full", True)
    assert assignment_next(campaign=campaign, annotator=users[3]) is None


def test_raters_who_split_get_more_raters_up_to_the_maximum_and_it_stays_unsettled():
    campaign = _dynamic()
    users = [annotator(campaign) for _ in range(5)]
    for user, side, wanted in zip(users, (True, False, True, False), (2, 3, 4, 4), strict=False):
        comparison = _judge(campaign, user, first=side)
        assert comparison.wanted == wanted
    assert (comparison.done, comparison.status, comparison.settled) == (4, "full", False)
    assert assignment_next(campaign=campaign, annotator=users[4]) is None


def test_ties_do_not_settle_a_comparison():
    campaign = _dynamic(max_raters=3)
    users = [annotator(campaign) for _ in range(3)]
    for user in users:
        comparison = _judge(campaign, user, first=None)
    assert (comparison.done, comparison.wanted, comparison.settled) == (3, 3, False)


def test_a_rater_with_a_gold_record_settles_it_sooner():
    campaign = _dynamic()
    careful, other = annotator(campaign), annotator(campaign)
    RaterStats.objects.create(campaign=campaign, annotator=careful, gold_correct=17)
    _judge(campaign, careful, first=False)
    # log 20 + log 3 = log 60: 60/61 = 0.984 >= 0.95 at min_raters.
    comparison = _judge(campaign, other, first=False)
    assert (comparison.done, comparison.wanted, comparison.settled) == (2, 2, True)


def test_judgments_in_flight_when_it_settles_still_count():
    campaign = _dynamic(min_raters=2, confidence=0.9)
    users = [annotator(campaign) for _ in range(2)]
    tasks = [assignment_next(campaign=campaign, annotator=user) for user in users]
    comparison = Comparison.objects.get(campaign=campaign)
    assert (comparison.in_flight, comparison.status) == (2, "full")
    uid = str(comparison.images.order_by("id").first().uid)
    for task in tasks:
        judgment_submit(assignment=task, answers={"overall": uid}, duration_ms=900)
    comparison.refresh_from_db()
    # Two agree: 9/10 >= 0.9.
    assert (comparison.done, comparison.in_flight, comparison.wanted) == (2, 0, 2)
    assert comparison.settled is True


def test_a_fixed_overlap_campaign_is_untouched():
    campaign = campaign_with_comparisons(prompts=1, overlap=3)
    users = [annotator(campaign) for _ in range(3)]
    for user in users:
        comparison = _judge(campaign, user, first=True)
    assert (comparison.done, comparison.wanted, comparison.settled) == (3, 3, None)


def test_turning_it_on_for_a_draft_moves_the_comparisons_to_min_raters():
    campaign = campaign_with_comparisons(prompts=2, overlap=5, status=Campaign.Status.DRAFT)
    campaign_update(campaign=campaign, dynamic_overlap=True, min_raters=2, max_raters=6)
    assert set(Comparison.objects.values_list("wanted", "status")) == {(2, "open")}


# The assignment order: the comparison whose next judgment is worth most -------------------


def _answer(assignment, *, first: bool) -> None:
    uids = [str(image.uid) for image in assignment.comparison.images.order_by("id")]
    judgment_submit(
        assignment=assignment, answers={"overall": uids[0 if first else 1]}, duration_ms=900
    )


def test_the_next_rater_gets_a_first_judgment_then_the_split_then_the_agreed():
    campaign = _dynamic(prompts=3)
    users = [annotator(campaign) for _ in range(8)]
    # Every comparison starts at the worth of its first judgment.
    assert len(set(Comparison.objects.values_list("priority", flat=True))) == 1
    # Four tasks in flight: two on the first comparison, then two on the second.
    tasks = [assignment_next(campaign=campaign, annotator=user) for user in users[:4]]
    agreed, split, fresh = Comparison.objects.order_by("id")
    assert [t.comparison_id for t in tasks] == [agreed.pk, agreed.pk, split.pk, split.pk]
    for task, first in zip(tasks, (True, True, True, False), strict=True):
        _answer(task, first=first)
    agreed.refresh_from_db()
    split.refresh_from_db()
    fresh.refresh_from_db()
    # Both want a third rater (two agreeing new raters: 9/10 < 0.95); a first judgment is
    # worth most, then the split's third, then a third after two who agree.
    assert (agreed.wanted, split.wanted) == (3, 3)
    assert fresh.priority > split.priority > agreed.priority > 0
    order = [assignment_next(campaign=campaign, annotator=user) for user in users[4:]]
    # The fresh one wants min_raters (2) first judgments; its priority moves on submit.
    assert [task.comparison_id for task in order] == [fresh.pk, fresh.pk, split.pk, agreed.pk]


def test_fixed_overlap_and_active_sampling_start_at_zero_and_switching_moves_the_fresh_ones():
    assert set(Comparison.objects.filter(campaign=_dynamic()).values_list("priority", flat=True))
    assert not any(
        Comparison.objects.filter(
            campaign=campaign_with_comparisons(prompts=1, overlap=3)
        ).values_list("priority", flat=True)
    )
    assert not Comparison.objects.get(campaign=_dynamic(active_sampling=True)).priority
    draft = campaign_with_comparisons(prompts=2, overlap=3, status=Campaign.Status.DRAFT)
    campaign_update(campaign=draft, dynamic_overlap=True, min_raters=2, max_raters=5)
    on = set(Comparison.objects.filter(campaign=draft).values_list("priority", flat=True))
    assert len(on) == 1 and on.pop() > 0
    campaign_update(campaign=draft, dynamic_overlap=False)
    assert set(Comparison.objects.filter(campaign=draft).values_list("priority", flat=True)) == {0}


def test_a_comparison_that_wants_no_more_goes_back_to_priority_zero():
    campaign = _dynamic()
    users = [annotator(campaign) for _ in range(3)]
    assert _judge(campaign, users[0], first=True).priority > 0
    assert _judge(campaign, users[1], first=True).priority > 0
    third = _judge(campaign, users[2], first=True)
    assert (third.settled, third.priority) == (True, 0)


def test_active_sampling_keeps_the_priority_to_itself():
    campaign = _dynamic(active_sampling=True)
    Comparison.objects.filter(campaign=campaign).update(priority=7)
    users = [annotator(campaign) for _ in range(2)]
    assert _judge(campaign, users[0], first=True).priority == 7
    assert _judge(campaign, users[1], first=False).priority == 7


# Settings ---------------------------------------------------------------------------------


def test_existing_and_new_campaigns_default_to_fixed_overlap():
    campaign = CampaignFactory()
    assert (campaign.dynamic_overlap, campaign.initial_wanted()) == (False, campaign.overlap)


@pytest.mark.parametrize(
    ("fields", "field", "message"),
    [
        ({"min_raters": 4, "max_raters": 3}, "max_raters", MAX_BELOW_MIN),
        ({"confidence": 0.5}, "confidence", CONFIDENCE_RANGE),
        ({"confidence": 1.0}, "confidence", CONFIDENCE_RANGE),
    ],
)
def test_the_service_refuses_settings_out_of_range(fields, field, message):
    from django.core.exceptions import ValidationError

    with pytest.raises(ValidationError) as refused:
        campaign_create(slug="bad", title="Bad", dynamic_overlap=True, **fields)
    assert refused.value.message_dict[field] == [message]


@pytest.mark.parametrize(
    "fields", [{"min_raters": 4, "max_raters": 3}, {"confidence": 0.5}, {"confidence": 1.0}]
)
def test_the_database_refuses_settings_out_of_range(fields):
    campaign = CampaignFactory()
    with pytest.raises(IntegrityError), transaction.atomic():
        Campaign.objects.filter(pk=campaign.pk).update(**fields)


@pytest.fixture
def creator(api_client):
    user = UserFactory()
    user.groups.add(Group.objects.get_or_create(name="campaign-admins")[0])
    api_client.force_authenticate(user)
    return api_client


def test_the_api_creates_a_dynamic_campaign_and_shows_its_settings(creator):
    body = {"slug": "dyn", "title": "Dyn", "dynamic_overlap": True, "min_raters": 2}
    body |= {"max_raters": 6, "confidence": 0.9}
    response = creator.post("/api/campaigns/", body, format="json")
    assert response.status_code == 201
    shown = response.json()
    assert {name: shown[name] for name in ("dynamic_overlap", "min_raters", "max_raters")} == {
        "dynamic_overlap": True,
        "min_raters": 2,
        "max_raters": 6,
    }
    assert shown["confidence"] == 0.9


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"min_raters": 5, "max_raters": 3}, "max_raters"),
        ({"confidence": 0.5}, "confidence"),
        ({"confidence": 1}, "confidence"),
        ({"confidence": 1.5}, "confidence"),
        ({"min_raters": 0}, "min_raters"),
        ({"max_raters": 101}, "max_raters"),
        ({"confidence": "sure"}, "confidence"),
        ({"dynamic_overlap": "maybe"}, "dynamic_overlap"),
    ],
)
def test_the_api_refuses_bad_settings_with_400(creator, fields, field):
    body = {"slug": "dyn", "title": "Dyn", "dynamic_overlap": True, **fields}
    response = creator.post("/api/campaigns/", body, format="json")
    assert response.status_code == 400
    assert field in str(response.json())
    assert not Campaign.objects.filter(slug="dyn").exists()


# Many annotators at once ------------------------------------------------------------------

ANNOTATORS = 8
PROMPTS = 10
MIN, MAX = 2, 5


def _side(comparison: Comparison, index: int) -> int:
    """Even comparisons: everyone picks the same image; odd ones: by annotator parity."""
    return 0 if comparison.pk % 2 == 0 else index % 2


def _answer_one(campaign: Campaign, index: int, user) -> bool:
    assignment = assignment_next(campaign=campaign, annotator=user)
    if assignment is None:
        return False
    uids = sorted(str(image.uid) for image in assignment.comparison.images.all())
    answer = {"overall": uids[_side(assignment.comparison, index)]}
    judgment_submit(assignment=assignment, answers=answer, duration_ms=500)
    return True


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_concurrent_annotators_keep_every_comparison_between_min_and_max():
    """Threads take and submit tasks until nothing is left. Even-numbered comparisons get
    unanimous answers, odd ones split by annotator, so some settle at min_raters and others
    run to max_raters while others' submits are in flight."""
    campaign = _dynamic(prompts=PROMPTS, min_raters=MIN, max_raters=MAX, confidence=0.95)
    users = [annotator(campaign) for _ in range(ANNOTATORS)]
    failures: list[str] = []
    lock = threading.Lock()
    start = threading.Barrier(ANNOTATORS)

    def work(index, user):
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
                comparison = Assignment.objects.get(pk=body["id"]).comparison
                uids = sorted(str(image.uid) for image in comparison.images.all())
                sent = client.post(
                    f"/api/assignments/{body['id']}/submit/",
                    {"answers": {"overall": uids[_side(comparison, index)]}, "duration_ms": 500},
                    format="json",
                )
                if sent.status_code != 201:
                    raise AssertionError(f"submit: {sent.status_code} {sent.content[:200]}")
        except Exception as exc:  # collected and asserted below, so no thread dies silently
            with lock:
                failures.append(repr(exc))
        finally:
            connection.close()

    threads = [threading.Thread(target=work, args=pair) for pair in enumerate(users)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)

    assert failures == []
    # A judgment in flight when another annotator heard 204 may reopen its comparison (its
    # raters disagreed): annotators who come back later take what is left.
    while any(_answer_one(campaign, index, user) for index, user in enumerate(users)):
        pass
    rows = list(Comparison.objects.values_list("done", "in_flight", "wanted", "settled"))
    assert all(MIN <= done <= MAX and in_flight == 0 for done, in_flight, _, _ in rows)
    assert not Comparison.objects.filter(done__gt=F("wanted")).exists()
    # Every comparison ended settled or at the maximum; the unanimous ones settled.
    assert all(settled or done == MAX for done, _, _, settled in rows), rows
    unanimous = Comparison.objects.annotate(odd=F("id") % 2).filter(odd=0)
    assert all(unanimous.values_list("settled", flat=True))
    pairs = Counter(Assignment.objects.values_list("annotator_id", "comparison_id"))
    assert max(pairs.values()) == 1
    assert not Assignment.objects.filter(state=Assignment.State.OPEN).exists()
    # The worth order was written on every submit and is back to 0 where nothing is wanted.
    assert set(Comparison.objects.values_list("priority", flat=True)) == {0}
