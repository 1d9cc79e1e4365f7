"""Active sampling: the pair choice, the priorities it writes, and the engine following them."""

import pytest
from django.core.exceptions import ValidationError

from annotate.models import ACTIVE_SAMPLING_PAIRWISE_ONLY, Campaign, Comparison
from annotate.quality import hooks
from annotate.quality.active import (
    MAX_PRIORITY,
    active_sampling_refresh,
    bradley_terry_fit,
    judgments_needed,
    leaderboard_precision,
    pair_priorities,
    pair_scores,
)
from annotate.quality.encoding import HI, LO, TIE_VALUE
from annotate.quality.leaderboard import bradley_terry_board
from annotate.quality.services import quality_recompute
from annotate.quality.tasks import active_sampling_refresh_task
from annotate.services.assignments import assignment_next
from annotate.services.campaigns import campaign_create, campaign_update
from annotate.services.judgments import judgment_submit
from tests.annotate.quality.crowd import models_of
from tests.factories import annotator, campaign_with_comparisons

# A and B close and little judged; A and C, B and C far apart and judged a lot.
CELLS = [
    ("A", "B", LO, 6),
    ("A", "B", HI, 5),
    ("A", "C", LO, 40),
    ("A", "C", HI, 2),
    ("B", "C", LO, 30),
    ("B", "C", TIE_VALUE, 4),
    ("B", "C", HI, 3),
]


def test_the_fit_is_the_leaderboards_fit():
    theta, covariance, _ = bradley_terry_fit(CELLS, ["A", "B", "C"])
    board = {row["model"]: row["score"] for row in bradley_terry_board(CELLS, replicates=0)}
    # Both solve the same likelihood to convergence; 1e-6 leaves room for evalica's stop rule.
    assert theta == pytest.approx([board["A"], board["B"], board["C"]], abs=1e-6)
    assert covariance.sum(axis=1) == pytest.approx([0, 0, 0], abs=1e-9)  # centred scores


def test_the_close_little_judged_pair_ranks_first_and_the_lopsided_one_last():
    ranks = pair_priorities(pair_scores(CELLS, ["A", "B", "C"]))
    assert ranks == {("A", "B"): 2, ("B", "C"): 1, ("A", "C"): 0}


def test_a_pair_nobody_judged_outranks_a_settled_one():
    cells = [("A", "B", LO, 50), ("A", "B", HI, 5)]  # C met nobody
    ranks = pair_priorities(pair_scores(cells, ["A", "B", "C"]))
    assert ranks[("A", "B")] == min(ranks.values())
    assert ranks[("A", "C")] > ranks[("A", "B")] and ranks[("B", "C")] > ranks[("A", "B")]


def test_more_pairs_than_priority_levels_share_levels_in_order():
    scores = {(f"m{i:05d}", "z"): float(i) for i in range(MAX_PRIORITY + 10)}
    ranks = pair_priorities(scores)
    assert min(ranks.values()) == 0 and max(ranks.values()) == MAX_PRIORITY
    ordered = [ranks[pair] for pair in sorted(scores, key=scores.get)]
    assert ordered == sorted(ordered)


def test_before_any_judgment_every_pair_shares_rank_zero():
    assert set(pair_priorities(pair_scores([], ["A", "B", "C", "D"])).values()) == {0}


def test_judgments_needed_scale_with_the_variance():
    # Half-width 0.1 after 100 judgments: +-0.05 needs 4 times the judgments, so 300 more.
    assert judgments_needed(judgments=100, half_width=0.1, target=0.05) == 300
    assert judgments_needed(judgments=100, half_width=0.04, target=0.05) == 0
    assert judgments_needed(judgments=0, half_width=1.0, target=0.05) is None
    rows = [
        {"model": "A", "score": 0.5, "low": 0.1, "high": 0.9, "wins": 8, "ties": 0, "losses": 2},
        {"model": "B", "score": -0.5, "low": -0.7, "high": -0.3, "wins": 2, "ties": 0, "losses": 8},
    ]
    precision = leaderboard_precision(rows, target=0.2)
    assert precision["judgments"] == 10 and precision["half_width"] == pytest.approx(0.4)
    assert precision["more"] == 30  # (0.4 / 0.2)^2 = 4 times 10 judgments
    assert leaderboard_precision([]) is None


def _judge(campaign, user, count: int, choose) -> None:
    models = models_of(campaign)
    for _ in range(count):
        assignment = assignment_next(campaign=campaign, annotator=user)
        judgment_submit(assignment=assignment, answers={"overall": choose(assignment, models)})


def _pair(comparison_id: int) -> tuple[str, ...]:
    names = Comparison.objects.get(pk=comparison_id).images.values_list("model_name", flat=True)
    return tuple(sorted(names))


def _a_b_close_c_far(assignment, models):
    """a beats c and b beats c; a and b take turns."""
    by_model = {models[uid]: uid for uid in assignment.presented}
    if "c" in by_model:
        return next(uid for model, uid in by_model.items() if model != "c")
    return by_model["a" if assignment.comparison_id % 2 else "b"]


@pytest.mark.django_db
def test_next_serves_the_least_certain_pair_once_the_refresh_ranked_them():
    campaign = campaign_with_comparisons(
        prompts=10, models=("a", "b", "c"), overlap=1, active_sampling=True
    )
    # Before any refresh every priority is 0: the engine's plain order, pair after pair.
    _judge(campaign, annotator(campaign), 12, _a_b_close_c_far)
    assert Comparison.objects.filter(priority__gt=0).count() == 0

    result = active_sampling_refresh(campaign=campaign)
    assert result["priorities"]["a vs b"] == max(result["priorities"].values())
    top = Comparison.objects.filter(campaign=campaign, priority=result["priorities"]["a vs b"])
    assert {_pair(pk) for pk in top.values_list("id", flat=True)} == {("a", "b")}
    assert result["written"] > 0

    newcomer = annotator(campaign)
    served = assignment_next(campaign=campaign, annotator=newcomer)
    assert _pair(served.comparison_id) == ("a", "b")
    # Nothing changed since: a second refresh writes nothing.
    assert active_sampling_refresh(campaign=campaign)["written"] == 0


@pytest.mark.django_db
def test_the_quality_recompute_refreshes_the_order_of_an_active_campaign():
    campaign = campaign_with_comparisons(
        prompts=6, models=("a", "b", "c"), overlap=1, active_sampling=True
    )
    _judge(campaign, annotator(campaign), 9, _a_b_close_c_far)
    timings = quality_recompute(campaign=campaign)
    assert timings["priorities_written"] > 0
    assert Comparison.objects.filter(campaign=campaign, priority__gt=0).exists()


@pytest.mark.django_db
def test_off_by_default_the_order_stays_plain_and_nothing_is_written():
    campaign = campaign_with_comparisons(prompts=4, models=("a", "b", "c"), overlap=1)
    assert campaign.active_sampling is False
    _judge(campaign, annotator(campaign), 6, _a_b_close_c_far)
    assert active_sampling_refresh(campaign=campaign) == {
        "scores": {},
        "priorities": {"a vs b": 0, "a vs c": 0, "b vs c": 0},
        "written": 0,
    }
    assert "priorities_written" not in quality_recompute(campaign=campaign)
    # The plain order: the fullest open comparison (all empty at overlap 1), then by id.
    first_open = Comparison.objects.filter(campaign=campaign, status="open").order_by("id")[0]
    served = assignment_next(campaign=campaign, annotator=annotator(campaign))
    assert served.comparison_id == first_open.pk


@pytest.mark.django_db
def test_turning_it_off_sets_every_priority_back_to_zero(django_capture_on_commit_callbacks):
    campaign = campaign_with_comparisons(
        prompts=6, models=("a", "b", "c"), overlap=1, active_sampling=True
    )
    _judge(campaign, annotator(campaign), 9, _a_b_close_c_far)
    active_sampling_refresh(campaign=campaign)
    assert Comparison.objects.filter(campaign=campaign, priority__gt=0).exists()
    with django_capture_on_commit_callbacks() as callbacks:
        campaign_update(campaign=campaign, active_sampling=False)
    assert [c.func.__self__.name for c in callbacks] == ["quality.active_sampling_refresh"]
    active_sampling_refresh_task(*callbacks[0].args)  # what the worker runs
    assert not Comparison.objects.filter(campaign=campaign, priority__gt=0).exists()


@pytest.mark.django_db
def test_submits_enqueue_a_refresh_every_few_judgments_of_an_active_campaign(
    django_capture_on_commit_callbacks, monkeypatch
):
    monkeypatch.setattr(hooks, "ACTIVE_REFRESH_EVERY", 1)  # every judgment, to see it happen
    active = campaign_with_comparisons(prompts=2, overlap=1, active_sampling=True)
    plain = campaign_with_comparisons(prompts=2, overlap=1)
    for campaign, expected in ((active, 1), (plain, 0)):
        user = annotator(campaign)
        assignment = assignment_next(campaign=campaign, annotator=user)
        with django_capture_on_commit_callbacks() as callbacks:
            judgment_submit(assignment=assignment, answers={"overall": assignment.presented[0]})
        names = [c.func.__self__.name for c in callbacks if hasattr(c.func, "__self__")]
        assert names.count("quality.active_sampling_refresh") == expected


@pytest.mark.django_db
def test_a_ranking_campaign_cannot_sample_actively():
    with pytest.raises(ValidationError) as error:
        campaign_create(slug="ranked", title="Ranked", kind="ranking", k=3, active_sampling=True)
    assert error.value.message_dict == {"active_sampling": [ACTIVE_SAMPLING_PAIRWISE_ONLY]}
    assert not Campaign.objects.filter(slug="ranked").exists()


@pytest.mark.django_db
def test_a_ranking_campaign_keeps_every_priority_at_zero():
    campaign = campaign_with_comparisons(
        prompts=3, models=("a", "b", "c"), kind="ranking", k=3, overlap=1
    )
    # Set behind the service's back: the refresh still refuses to rank a ranking campaign.
    Campaign.objects.filter(pk=campaign.pk).update(active_sampling=True)
    campaign.refresh_from_db()
    assert active_sampling_refresh(campaign=campaign)["written"] == 0
    assert not Comparison.objects.filter(campaign=campaign, priority__gt=0).exists()


@pytest.mark.django_db(transaction=True)
def test_the_migration_leaves_existing_campaigns_off_and_their_comparisons_at_zero():
    from django.db import connection
    from django.db.migrations.executor import MigrationExecutor

    before = [("annotate", "0010_image_import_claim")]
    executor = MigrationExecutor(connection)
    executor.migrate(before)
    old = executor.loader.project_state(before).apps
    campaign = old.get_model("annotate", "Campaign").objects.create(slug="old", title="Old")
    prompt = old.get_model("annotate", "Prompt").objects.create(campaign=campaign, text="a cat")
    old.get_model("annotate", "Comparison").objects.create(
        campaign=campaign, prompt=prompt, key="1-2"
    )

    executor = MigrationExecutor(connection)
    executor.migrate(executor.loader.graph.leaf_nodes())  # this migration and any after it

    assert Campaign.objects.get(slug="old").active_sampling is False
    assert Comparison.objects.get(campaign__slug="old").priority == 0
    with connection.cursor() as cursor:
        indexes = connection.introspection.get_constraints(cursor, "annotate_comparison")
    assert "comparison_open_queue" in indexes
