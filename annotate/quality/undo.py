"""Taking a judgment back out of the rater statistics, as if it had never been given.

The mirror of hooks.quality_on_submit, run inside judgment_undo's transaction with the
membership row locked and, for regular and gold judgments, the comparison row locked by
the undo's counter update. The undo service only lets the rater's latest judgment go, so
the gold counters can be replayed from the rater's remaining gold answers.
"""

from django.db.models import F

from annotate.models import Judgment
from annotate.quality.encoding import BOTH_BAD_VALUE, DERIVED, PAIR, judgment_ms
from annotate.quality.hooks import repeat_agrees
from annotate.quality.models import RaterStats, Rating
from annotate.quality.rater_stats import (
    co_rater_updates,
    judgment_units,
    own_increments,
    primary_criterion,
    stats_increment,
)
from annotate.quality.rules import GOLD_COUNTERS, gold_step, policy_for
from annotate.selectors import comparison_canonical_images


def _negated(increments: dict[str, int]) -> dict[str, int]:
    return {name: -step for name, step in increments.items()}


def _off_regular(*, judgment: Judgment) -> None:
    """Every counter the judgment moved, moved back: its own, and its co-raters' pairs.

    The co-rater figures are those of co_rater_updates against the unit's ratings now: a
    pair with a later rater was counted by that rater's submit, with the same arithmetic.
    """
    campaign = judgment.campaign
    images = comparison_canonical_images(comparison_id=judgment.comparison_id)
    units = judgment_units(judgment=judgment, campaign=campaign, images=images)
    Rating.objects.filter(judgment_id=judgment.pk).delete()
    others = Rating.objects.filter(
        comparison_id=judgment.comparison_id,
        criterion=primary_criterion(campaign),
        kind__in=(PAIR, DERIVED),
        value__lt=BOTH_BAD_VALUE,
    ).values_list("annotator_id", "image_lo_id", "image_hi_id", "value", "excluded")
    own_pairs, theirs = co_rater_updates(units, list(others))
    increments = own_increments(
        units,
        milliseconds=judgment_ms(duration_ms=judgment.duration_ms, server_ms=judgment.server_ms),
    )
    bucket = increments.pop("bucket")
    increments.update(own_pairs)
    stats_increment(
        campaign_id=campaign.pk,
        annotator_id=judgment.annotator_id,
        own=_negated(increments),
        bucket=bucket,
        bucket_step=-1,
        theirs={rater: _negated(figures) for rater, figures in theirs.items()},
    )


def _off_gold(*, judgment: Judgment) -> None:
    """Replay the rater's other gold answers in order, as the recompute does.

    A drift check still open was open when this answer came (checks open on regular
    submits only), so the answer leaves its counters too; one it closed stays closed."""
    policy = policy_for(judgment.campaign)
    figures = dict.fromkeys(GOLD_COUNTERS, 0)
    answers = (
        Judgment.objects.filter(
            campaign_id=judgment.campaign_id, annotator_id=judgment.annotator_id, is_gold=True
        )
        .exclude(pk=judgment.pk)
        .order_by("id")
        .values_list("gold_correct", flat=True)
    )
    for correct in answers:
        if correct is not None:
            for name, step in gold_step(figures, correct=correct, policy=policy).items():
                figures[name] += step
    name = "drift_gold_correct" if judgment.gold_correct else "drift_gold_wrong"
    rows = RaterStats.objects.filter(
        campaign_id=judgment.campaign_id, annotator_id=judgment.annotator_id
    )
    rows.update(**figures)
    if judgment.gold_correct is not None:
        rows.filter(drift_check_at__gt=0, **{f"{name}__gt": 0}).update(**{name: F(name) - 1})


def _off_repeat(*, judgment: Judgment) -> None:
    stats_increment(
        campaign_id=judgment.campaign_id,
        annotator_id=judgment.annotator_id,
        own={"repeats": -1, "repeats_same": -int(repeat_agrees(judgment))},
    )


def quality_on_undo(*, judgment: Judgment) -> None:
    """Needs `judgment` with its campaign and assignment; before the judgment is deleted."""
    if judgment.is_gold:
        _off_gold(judgment=judgment)
    elif judgment.is_repeat:
        _off_repeat(judgment=judgment)
    else:
        _off_regular(judgment=judgment)
