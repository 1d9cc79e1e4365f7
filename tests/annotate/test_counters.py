"""Every counter shown to annotators and admins, driven through the services and read from
the annotator's status bar, the dashboard and the API: they must tell one story.

The test keeps its own tally of what it did (which task kinds it was served, what it
answered, skipped or had excluded) and compares every page and the API to that tally.
"""

import random
import re

import pytest
from django.urls import reverse

from annotate.models import Comparison, Membership
from annotate.quality.services import rater_gate_override
from annotate.services import assignments as engine
from annotate.services.assignments import assignment_next, assignment_skip
from annotate.services.gold import gold_build
from annotate.services.judgments import judgment_submit
from tests.factories import UserFactory, annotator, campaign_with_comparisons

pytestmark = pytest.mark.django_db

REGULAR = 40
QUALIFICATION_SIZE = 10


@pytest.fixture
def campaign(monkeypatch):
    monkeypatch.setattr(engine, "_rng", random.Random(5))  # which kind comes next
    campaign = campaign_with_comparisons(
        prompts=REGULAR, qualification_size=QUALIFICATION_SIZE, gold_rate=0.2, repeat_rate=0.2
    )
    gold_build(campaign=campaign, count=20)
    return campaign


def _right(assignment) -> str:
    return Comparison.objects.get(pk=assignment.comparison_id).gold_answer["overall"]


def _status(client, campaign, user) -> tuple[int, str]:
    """(Done, the whole status bar) as the annotator's screen shows them."""
    client.force_login(user)
    html = client.get(reverse("frontend:annotate-status", args=[campaign.pk])).content.decode()
    return int(re.search(r"Done: (\d+)", html).group(1)), html


def _dashboard(client, campaign, admin) -> dict[str, int]:
    client.force_login(admin)
    html = client.get(reverse("frontend:dashboard-progress", args=[campaign.pk])).content.decode()
    return {k: int(v) for k, v in re.findall(r'data-figure="(\w+)">(\d+)<', html)}


def _api(api_client, campaign, user) -> dict:
    api_client.force_authenticate(user)
    return api_client.get(f"/api/campaigns/{campaign.pk}/").json()


def test_qualification_gold_repeats_and_skips_agree_on_screen_dashboard_and_api(
    client, api_client, campaign
):
    admin = UserFactory()
    Membership.objects.create(campaign=campaign, user=admin, role="admin", rater_key=1)
    ada = annotator(campaign, "ada")
    assert Membership.objects.get(user=ada).gate_state == "qualifying"
    tally = {"qualification": 0, "gold": 0, "repeats": 0, "judgments": 0, "skipped": 0}

    # Qualification: right answers until the gold SPRT passes (8 with the default policy).
    done, html = _status(client, campaign, ada)
    assert done == 0 and "0 of 10 practice items done" in html
    while Membership.objects.get(user=ada).gate_state == "qualifying":
        task = assignment_next(campaign=campaign, annotator=ada)
        assert task.is_gold
        judgment_submit(assignment=task, answers={"overall": _right(task)}, duration_ms=900)
        tally["qualification"] += 1
        done, html = _status(client, campaign, ada)
        assert done == tally["qualification"]
        if Membership.objects.get(user=ada).gate_state == "qualifying":
            assert f"{done} of 10 practice items done" in html
        mine = _api(api_client, campaign, ada)["mine"]
        assert (mine["judged"], mine["qualification_done"]) == (done, done)
        figures = _dashboard(client, campaign, admin)
        assert (figures["qualification_answers"], figures["judgments_done"]) == (done, 0)
    assert tally["qualification"] == 8
    done, html = _status(client, campaign, ada)
    assert "practice items" not in html and "data-qualifying" not in html
    assert _api(api_client, campaign, ada)["mine"]["qualifying"] is False

    # Regular work with gold checks and repeats mixed in, and every fifth task skipped.
    for step in range(60):
        task = assignment_next(campaign=campaign, annotator=ada)
        if task is None:
            break
        if step % 5 == 4:
            assignment_skip(assignment=task)
            tally["skipped"] += 1
            continue
        answer = _right(task) if task.is_gold else task.presented[0]
        judgment_submit(assignment=task, answers={"overall": answer}, duration_ms=900)
        kind = "gold" if task.is_gold else "repeats" if task.is_repeat else "judgments"
        tally[kind] += 1
        # Done moves by one whatever the task was: it does not tell checks apart.
        assert _status(client, campaign, ada)[0] == sum(
            tally[k] for k in ("qualification", "gold", "repeats", "judgments")
        )
    assert min(tally.values()) > 0, tally  # every kind happened

    answers = sum(tally[k] for k in ("qualification", "gold", "repeats", "judgments"))
    assert _status(client, campaign, ada)[0] == answers
    figures = _dashboard(client, campaign, admin)
    assert figures == {
        "judgments_done": tally["judgments"],
        "qualification_answers": tally["qualification"],
        "gold_answers": tally["gold"],
        "repeat_answers": tally["repeats"],
        "skipped": tally["skipped"],
    }
    progress = _api(api_client, campaign, admin)["progress"]
    assert {k: progress[k] for k in figures} == figures
    assert progress["answers"] == answers and progress["excluded_judgments"] == 0
    # The dashboard's Judgments is what the comparisons count towards overlap.
    assert sum(c.done for c in Comparison.objects.filter(role="regular")) == tally["judgments"]
    # Annotators get their own figures, never the campaign's split into checks.
    body = _api(api_client, campaign, ada)
    assert "progress" not in body
    assert body["mine"] == {
        "judged": answers,
        "qualifying": False,
        "qualification_done": tally["qualification"],
        "skipped": tally["skipped"],
    }


def test_a_blocked_raters_judgments_move_from_judgments_to_excluded(client, api_client, campaign):
    admin = UserFactory()
    Membership.objects.create(campaign=campaign, user=admin, role="admin", rater_key=2)
    bob = annotator(campaign, "bob", gate_state=Membership.Gate.ACTIVE)
    counted = 0
    while counted < 6:
        task = assignment_next(campaign=campaign, annotator=bob)
        judgment_submit(assignment=task, answers={"overall": task.presented[0]}, duration_ms=9)
        counted += not (task.is_gold or task.is_repeat)
    before = _api(api_client, campaign, admin)["progress"]
    assert (before["judgments_done"], before["excluded_judgments"]) == (6, 0)
    assert before["qualification_answers"] == 0  # bob never qualified: he started active
    rater_gate_override(campaign=campaign, user=bob, state="blocked", reason="test", by=admin)
    after = _api(api_client, campaign, admin)["progress"]
    assert (after["judgments_done"], after["excluded_judgments"]) == (0, 6)
    assert after["answers"] == before["answers"]
    assert _dashboard(client, campaign, admin)["excluded_judgments"] == 6


def test_a_qualifier_past_the_size_is_told_more_are_needed(client, campaign):
    cara = annotator(campaign, "cara")
    for index in range(QUALIFICATION_SIZE):
        task = assignment_next(campaign=campaign, annotator=cara)
        wrong = next(uid for uid in task.presented if uid != _right(task))
        answer = wrong if index in (0, 1) else _right(task)  # two wrong: SPRT still open
        judgment_submit(assignment=task, answers={"overall": answer}, duration_ms=900)
    assert Membership.objects.get(user=cara).gate_state == "qualifying"
    done, html = _status(client, campaign, cara)
    assert done == QUALIFICATION_SIZE
    assert "All practice items done; a few more are needed" in html
    assert "10 of 10" not in html
