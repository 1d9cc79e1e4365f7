"""Quality tables: encoded ratings, per-rater counters, agreement snapshots, gate events.

Rating is the canonical encoding of judgments (specs/quality.md): one row per judgment,
criterion and unit, small integers only, so every statistic is an SQL aggregate.
"""

from django.conf import settings
from django.db import models
from django.db.models import Q

from annotate.models import Campaign, Comparison, Image, Judgment

__all__ = ["AgreementSnapshot", "GateEvent", "Rating", "RaterStats"]


class Rating(models.Model):
    """One rater's value for one unit: the first judgment only; gold and repeats never."""

    class Kind(models.IntegerChoices):
        PAIR = 0  # pairwise comparison: unit = the unordered image pair
        RANK = 1  # ranking: unit = (comparison, image), value = 2 x mid-rank
        DERIVED = 2  # a pair read off a ranking: reported separately, not independent

    # Pair values, canonical order (lower image id = lo). BOTH_BAD is kept out of alpha.
    LO, TIE, HI, BOTH_BAD = 0, 1, 2, 3

    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="+")
    comparison = models.ForeignKey(Comparison, on_delete=models.CASCADE, related_name="+")
    judgment = models.ForeignKey(Judgment, on_delete=models.CASCADE, related_name="ratings")
    annotator = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+"
    )
    criterion = models.CharField(max_length=32)
    kind = models.PositiveSmallIntegerField(choices=Kind.choices)
    image_lo = models.ForeignKey(Image, on_delete=models.CASCADE, related_name="+")
    image_hi = models.ForeignKey(
        Image, null=True, blank=True, on_delete=models.CASCADE, related_name="+"
    )
    value = models.PositiveSmallIntegerField()
    # +1 when lo was shown before hi, -1 otherwise (pairs only): the position-bias test.
    side = models.SmallIntegerField(default=0)
    # The judgment's duration bucket (encoding.SPEED_EDGES_MS), so a pairwise recompute
    # reads speed from this table in the same pass instead of scanning the judgments.
    speed_bucket = models.PositiveSmallIntegerField(default=0)
    # Mirrors Judgment.excluded, so statistics need no join.
    excluded = models.BooleanField(default=False)
    created_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["judgment", "criterion", "kind", "image_lo", "image_hi"],
                name="rating_once_per_unit",
                nulls_distinct=False,
            ),
        ]
        indexes = [
            models.Index(fields=["comparison", "criterion"], name="rating_by_unit"),
            models.Index(fields=["campaign", "criterion", "kind"], name="rating_by_campaign"),
            models.Index(fields=["annotator", "campaign"], name="rating_by_rater"),
        ]

    def __str__(self) -> str:
        return f"rating of judgment {self.judgment_id} ({self.criterion})"


class RaterStats(models.Model):
    """Running evidence about one rater in one campaign, on the campaign's first criterion.

    Updated in the submit transaction with O(1) queries; `quality_recompute` rebuilds the
    same numbers from the ratings and the two must agree exactly.
    """

    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="rater_stats")
    annotator = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="rater_stats"
    )
    judgments = models.PositiveIntegerField(default=0)  # counted regular judgments
    n_lo = models.PositiveIntegerField(default=0)  # pair labels (derived pairs for rankings)
    n_tie = models.PositiveIntegerField(default=0)
    n_hi = models.PositiveIntegerField(default=0)
    both_bad = models.PositiveIntegerField(default=0)
    tie_judgments = models.PositiveIntegerField(default=0)
    co_rated = models.PositiveIntegerField(default=0)  # judgments with at least one co-rater
    co_pairs = models.PositiveIntegerField(default=0)
    co_agree = models.PositiveIntegerField(default=0)
    pos_n = models.PositiveIntegerField(default=0)
    pos_pairs = models.PositiveIntegerField(default=0)
    pos_sum = models.IntegerField(default=0)
    pos_sumsq = models.PositiveIntegerField(default=0)
    gold_correct = models.PositiveIntegerField(default=0)
    gold_wrong = models.PositiveIntegerField(default=0)
    # Gold answers counted when the gold SPRT first passed (0: not yet), and the gold
    # answered since then: their own SPRT catches a rater who turns careless after
    # qualifying (the lifetime one is slow to move once qualification built up credit).
    gold_passed_at = models.PositiveIntegerField(default=0)
    post_gold_correct = models.PositiveIntegerField(default=0)
    post_gold_wrong = models.PositiveIntegerField(default=0)
    # The latest gold answers (up to the policy's gold_window): bit i is 1 when the i-th
    # latest was wrong; gold_recent_n of them are in the window.
    gold_recent_bits = models.PositiveIntegerField(default=0)
    gold_recent_n = models.PositiveSmallIntegerField(default=0)
    # Recent figures beside the lifetime ones, moved by each submit and never rebuilt by
    # the recompute (they follow the order the evidence arrived in; see quality.rules):
    # co-rater pairs and agreements weighted (1 - 1/recent_pairs) per later pair ...
    co_recent_pairs = models.FloatField(default=0.0)
    co_recent_agree = models.FloatField(default=0.0)
    # ... the log of the typical judgment time, weighted per later judgment (null: none yet),
    speed_recent_log = models.FloatField(null=True, blank=True)
    # ... and the drift CUSUM on co-rater agreement; at its bound a drift check opens (at
    # drift_check_at counted judgments; 0: none open) and the gold answered since decides.
    drift_cusum = models.FloatField(default=0.0)
    drift_check_at = models.PositiveIntegerField(default=0)
    drift_gold_correct = models.PositiveIntegerField(default=0)
    drift_gold_wrong = models.PositiveIntegerField(default=0)
    repeats = models.PositiveIntegerField(default=0)
    repeats_same = models.PositiveIntegerField(default=0)
    # Counts of judgment durations in log-spaced buckets (quality.encoding.SPEED_EDGES_MS).
    speed_hist = models.JSONField(default=list)
    # Only from the full recompute: the leave-one-out majority moves as ratings arrive.
    kappa = models.FloatField(null=True, blank=True)
    kappa_n = models.PositiveIntegerField(default=0)
    flags = models.JSONField(default=list, blank=True)
    # An admin's override holds: automatic rules leave this rater alone until released.
    manual_hold = models.BooleanField(default=False)
    evaluated_at = models.DateTimeField(null=True, blank=True)
    recomputed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["campaign", "annotator"], name="rater_stats_once"),
        ]

    def __str__(self) -> str:
        return f"stats of rater {self.annotator_id} in campaign {self.campaign_id}"


class AgreementSnapshot(models.Model):
    """Alpha for one campaign and criterion at one recompute, kept as history."""

    campaign = models.ForeignKey(
        Campaign, on_delete=models.CASCADE, related_name="agreement_snapshots"
    )
    criterion = models.CharField(max_length=32)
    kind = models.PositiveSmallIntegerField(choices=Rating.Kind.choices)
    units = models.PositiveIntegerField()  # units with at least two ratings
    ratings = models.PositiveIntegerField()
    alpha_nominal = models.FloatField(null=True, blank=True)
    alpha_nominal_low = models.FloatField(null=True, blank=True)
    alpha_nominal_high = models.FloatField(null=True, blank=True)
    alpha_ordinal = models.FloatField(null=True, blank=True)
    alpha_ordinal_low = models.FloatField(null=True, blank=True)
    alpha_ordinal_high = models.FloatField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at", "id"]

    def __str__(self) -> str:
        return f"alpha of {self.criterion} in campaign {self.campaign_id}"


class GateEvent(models.Model):
    """Append-only audit log of gate transitions, with the figures that justified each."""

    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="gate_events")
    annotator = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="gate_events"
    )
    from_state = models.CharField(max_length=16)
    to_state = models.CharField(max_length=16)
    rule = models.CharField(max_length=64)  # "gold_sprt", "tie_spam", ..., or "admin"
    reason = models.CharField(max_length=500)
    by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text="The admin who decided; empty for automatic rules.",
    )
    figures = models.JSONField(default=dict)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.CheckConstraint(
                condition=~Q(from_state=models.F("to_state")), name="gate_moves"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.annotator_id}: {self.from_state} -> {self.to_state} ({self.rule})"
