"""Campaigns, their prompts, images and comparisons, and who judged what.

Invariants that matter live in the database: one judgment per assignment, an annotator
meets a comparison once (repeats aside), counters never negative and never past overlap.
"""

import uuid

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxLengthValidator, MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import F, Q
from django.db.models.functions import Length
from django.db.models.lookups import LessThanOrEqual

from annotate.prompt_length import MAX_PROMPT_CHARS
from pickwise.jobs import ClaimedJob

MAX_BELOW_MIN = "max_raters must be at least min_raters."
CONFIDENCE_RANGE = "confidence must be above 0.5 and below 1."

ACTIVE_SAMPLING_PAIRWISE_ONLY = (
    "Active sampling ranks model pairs, so it needs a pairwise campaign."
)


def default_criteria() -> list[dict]:
    return [
        {
            "key": "overall",
            "question": "Which image is better overall?",
            "allow_tie": True,
            "allow_both_bad": True,
        }
    ]


class Campaign(models.Model):
    class Kind(models.TextChoices):
        PAIRWISE = "pairwise"
        RANKING = "ranking"

    class Status(models.TextChoices):
        DRAFT = "draft"
        GENERATING = "generating"
        ACTIVE = "active"
        PAUSED = "paused"
        CLOSED = "closed"

    slug = models.SlugField(max_length=64, unique=True)
    title = models.CharField(max_length=200)
    instructions = models.TextField(blank=True, help_text="Markdown, rendered safely.")
    kind = models.CharField(max_length=16, choices=Kind.choices, default=Kind.PAIRWISE)
    k = models.PositiveSmallIntegerField(
        default=2, validators=[MinValueValidator(2), MaxValueValidator(9)]
    )
    criteria = models.JSONField(default=default_criteria)
    overlap = models.PositiveSmallIntegerField(
        default=3, validators=[MinValueValidator(1), MaxValueValidator(100)]
    )
    # Dynamic overlap (annotate.services.overlap): instead of `overlap` judgments each, a
    # comparison starts at min_raters and gets more, up to max_raters, until the posterior
    # of its leading side reaches `confidence`. Off: every comparison wants `overlap`.
    dynamic_overlap = models.BooleanField(
        default=False,
        help_text="Stop a comparison once its raters agree with the set confidence; ask more "
        "raters, up to max_raters, where they disagree.",
    )
    min_raters = models.PositiveSmallIntegerField(
        default=2,
        validators=[MinValueValidator(1), MaxValueValidator(100)],
        help_text="With dynamic overlap: judgments every comparison gets at least.",
    )
    max_raters = models.PositiveSmallIntegerField(
        default=5,
        validators=[MinValueValidator(1), MaxValueValidator(100)],
        help_text="With dynamic overlap: judgments a comparison gets at most.",
    )
    confidence = models.FloatField(
        default=0.95,
        validators=[MinValueValidator(0.5), MaxValueValidator(1.0)],
        help_text="With dynamic overlap: the posterior probability of the leading side at "
        "which a comparison is settled, above 0.5 and below 1.",
    )
    gold_rate = models.FloatField(
        default=0.02, validators=[MinValueValidator(0.0), MaxValueValidator(1.0)]
    )
    repeat_rate = models.FloatField(
        default=0.05, validators=[MinValueValidator(0.0), MaxValueValidator(1.0)]
    )
    qualification_size = models.PositiveSmallIntegerField(default=15)
    lease_seconds = models.PositiveIntegerField(
        default=600, validators=[MinValueValidator(10), MaxValueValidator(86400)]
    )
    # Pairs per prompt when building pairwise comparisons; null means every pair.
    pairs_per_prompt = models.PositiveIntegerField(null=True, blank=True)
    # Active sampling: hand out first the comparisons whose model pair's Bradley-Terry order
    # is least certain (annotate/quality/active.py ranks the pairs into Comparison.priority).
    active_sampling = models.BooleanField(
        default=False,
        help_text="Serve first the model pairs whose order is least certain (pairwise only).",
    )
    qc_policy = models.JSONField(default=dict, blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.DRAFT)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.CheckConstraint(
                condition=(Q(kind="pairwise", k=2) | Q(kind="ranking", k__gte=3, k__lte=9)),
                name="campaign_k_fits_kind",
            ),
            models.CheckConstraint(condition=Q(overlap__gte=1), name="campaign_overlap_positive"),
            models.CheckConstraint(
                condition=Q(min_raters__gte=1, max_raters__gte=F("min_raters"))
                & Q(confidence__gt=0.5, confidence__lt=1),
                name="campaign_dynamic_overlap_in_range",
            ),
            models.CheckConstraint(
                condition=Q(
                    gold_rate__gte=0, gold_rate__lte=1, repeat_rate__gte=0, repeat_rate__lte=1
                )
                & Q(gold_rate__lte=1 - F("repeat_rate")),
                name="campaign_rates_in_range",
            ),
        ]

    def __str__(self) -> str:
        return self.slug

    def clean(self) -> None:
        from annotate.criteria import validate_criteria

        if self.kind == self.Kind.PAIRWISE and self.k != 2:
            raise ValidationError({"k": "A pairwise campaign compares exactly 2 images."})
        if self.kind == self.Kind.RANKING and not 3 <= self.k <= 9:
            raise ValidationError({"k": "A ranking campaign ranks 3 to 9 images."})
        if self.gold_rate + self.repeat_rate > 1:
            raise ValidationError({"gold_rate": "gold_rate + repeat_rate must not exceed 1."})
        if self.min_raters > self.max_raters:
            raise ValidationError({"max_raters": MAX_BELOW_MIN})
        if not 0.5 < self.confidence < 1:
            raise ValidationError({"confidence": CONFIDENCE_RANGE})
        if self.active_sampling and self.kind != self.Kind.PAIRWISE:
            raise ValidationError({"active_sampling": ACTIVE_SAMPLING_PAIRWISE_ONLY})
        validate_criteria(self.criteria)

    def initial_wanted(self) -> int:
        """Judgments a new regular comparison wants: min_raters with dynamic overlap."""
        return self.min_raters if self.dynamic_overlap else self.overlap


class Membership(models.Model):
    class Role(models.TextChoices):
        ANNOTATOR = "annotator"
        RESEARCHER = "researcher"
        ADMIN = "admin"

    class Gate(models.TextChoices):
        QUALIFYING = "qualifying"
        ACTIVE = "active"
        WARNED = "warned"
        BLOCKED = "blocked"

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships"
    )
    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.ANNOTATOR)
    gate_state = models.CharField(max_length=16, choices=Gate.choices, default=Gate.QUALIFYING)
    gate_reason = models.CharField(max_length=500, blank=True)
    gate_changed_at = models.DateTimeField(null=True, blank=True)
    # Pseudonymous rater id for exports: stable, unrelated to the user's id or name.
    rater_key = models.BigIntegerField(unique=True)
    # Tasks handed out so far: an assignment's sequence number, so repeats can look back.
    issued = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["user", "campaign"], name="membership_once"),
        ]

    def __str__(self) -> str:
        return f"{self.user} in {self.campaign} ({self.role})"


class Prompt(models.Model):
    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="prompts")
    text = models.TextField(validators=[MaxLengthValidator(MAX_PROMPT_CHARS)])
    negative_prompt = models.TextField(
        blank=True, validators=[MaxLengthValidator(MAX_PROMPT_CHARS)]
    )
    meta = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(fields=["campaign", "text"], name="prompt_unique_in_campaign"),
            models.CheckConstraint(condition=~Q(text=""), name="prompt_text_not_empty"),
            # The one length rule (annotate.prompt_length), held for every writer.
            models.CheckConstraint(
                condition=LessThanOrEqual(Length("text"), MAX_PROMPT_CHARS),
                name="prompt_text_length",
            ),
            models.CheckConstraint(
                condition=LessThanOrEqual(Length("negative_prompt"), MAX_PROMPT_CHARS),
                name="prompt_negative_length",
            ),
        ]

    def __str__(self) -> str:
        return self.text[:60]


def image_upload_path(instance: "Image", filename: str) -> str:
    # Content-addressed: the path says nothing about the model that made the image.
    ext = filename.rsplit(".", 1)[-1].lower()
    return f"images/{instance.sha256[:2]}/{instance.sha256[2:4]}/{instance.sha256}.{ext}"


class Image(models.Model):
    class Source(models.TextChoices):
        GENERATED = "generated"
        IMPORTED = "imported"
        DERIVED = "derived"  # made from another image for automatic gold (corrupted, copy)

    uid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    prompt = models.ForeignKey(Prompt, on_delete=models.CASCADE, related_name="images")
    file = models.FileField(upload_to=image_upload_path, max_length=200)
    sha256 = models.CharField(max_length=64)
    width = models.PositiveIntegerField()
    height = models.PositiveIntegerField()
    model_name = models.CharField(max_length=200, blank=True)
    generator = models.ForeignKey(
        "generation.Generator",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="images",
    )
    seed = models.BigIntegerField(null=True, blank=True)
    params = models.JSONField(default=dict, blank=True)
    source = models.CharField(max_length=16, choices=Source.choices, default=Source.IMPORTED)
    derived_from = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.CASCADE, related_name="derivatives"
    )
    score = models.FloatField(null=True, blank=True, help_text="Optional reward-model score.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            # Makes generation idempotent: a retried task finds its image instead of adding one.
            models.UniqueConstraint(
                fields=["prompt", "generator", "seed"],
                condition=Q(generator__isnull=False),
                name="image_generated_once",
            ),
            # Makes imports idempotent: the same file for the same prompt is one image.
            models.UniqueConstraint(
                fields=["prompt", "sha256"],
                condition=Q(source="imported"),
                name="image_imported_once",
            ),
            models.CheckConstraint(condition=Q(width__gt=0, height__gt=0), name="image_has_size"),
        ]

    def __str__(self) -> str:
        return str(self.uid)


class Comparison(models.Model):
    class Role(models.TextChoices):
        REGULAR = "regular"
        GOLD = "gold"

    class Status(models.TextChoices):
        OPEN = "open"  # done + in_flight < wanted: can be handed out
        FULL = "full"
        RETIRED = "retired"

    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="comparisons")
    prompt = models.ForeignKey(Prompt, on_delete=models.CASCADE, related_name="comparisons")
    images = models.ManyToManyField(Image, through="ComparisonImage", related_name="comparisons")
    # Sorted image ids joined by "-": one comparison per image set and campaign.
    key = models.CharField(max_length=200)
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.REGULAR)
    # Expected answer per criterion for gold; never serialised to annotators.
    gold_answer = models.JSONField(null=True, blank=True)
    gold_kind = models.CharField(max_length=32, blank=True)
    wanted = models.PositiveSmallIntegerField(default=3)
    done = models.PositiveIntegerField(default=0)
    in_flight = models.PositiveIntegerField(default=0)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.OPEN)
    # Dynamic overlap only: whether the counted judgments settle the consensus (as of the
    # latest submit); null where the campaign uses a fixed overlap.
    settled = models.BooleanField(null=True, blank=True)
    # Higher first in the assignment engine; 0 unless the campaign samples actively, then the
    # rank of this comparison's model pair (annotate/quality/active.py writes it).
    priority = models.PositiveSmallIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(fields=["campaign", "key"], name="comparison_unique_images"),
            # The overlap invariant, held by the database itself for regular comparisons.
            models.CheckConstraint(
                condition=Q(role="gold") | Q(done__lte=F("wanted") - F("in_flight")),
                name="comparison_within_overlap",
            ),
            models.CheckConstraint(
                condition=Q(role="regular", gold_answer__isnull=True)
                | Q(role="gold", gold_answer__isnull=False),
                name="comparison_gold_has_answer",
            ),
        ]
        indexes = [
            # The assignment engine's hot query: open regular comparisons, highest priority,
            # then fullest, first.
            models.Index(
                F("campaign"),
                F("priority").desc(),
                (F("done") + F("in_flight")).desc(),
                F("id"),
                name="comparison_open_queue",
                condition=Q(status="open", role="regular"),
            ),
            models.Index(fields=["campaign", "role"], name="comparison_role"),
        ]

    def __str__(self) -> str:
        return f"{self.campaign.slug} #{self.pk}"


class ComparisonImage(models.Model):
    comparison = models.ForeignKey(Comparison, on_delete=models.CASCADE, related_name="slots")
    image = models.ForeignKey(Image, on_delete=models.PROTECT, related_name="+")
    slot = models.PositiveSmallIntegerField()

    class Meta:
        ordering = ["comparison_id", "slot"]
        constraints = [
            models.UniqueConstraint(fields=["comparison", "slot"], name="comparison_slot_once"),
            models.UniqueConstraint(fields=["comparison", "image"], name="comparison_image_once"),
        ]

    def __str__(self) -> str:
        return f"slot {self.slot} of comparison {self.comparison_id}"


class Assignment(models.Model):
    class State(models.TextChoices):
        OPEN = "open"
        SUBMITTED = "submitted"
        EXPIRED = "expired"
        SKIPPED = "skipped"

    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="assignments")
    comparison = models.ForeignKey(Comparison, on_delete=models.CASCADE, related_name="assignments")
    annotator = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="assignments"
    )
    presented = models.JSONField(help_text="Image uids in screen order.")
    issued_at = models.DateTimeField()
    expires_at = models.DateTimeField()
    state = models.CharField(max_length=16, choices=State.choices, default=State.OPEN)
    is_gold = models.BooleanField(default=False)
    is_repeat = models.BooleanField(default=False)
    repeat_of = models.OneToOneField(
        "Judgment", null=True, blank=True, on_delete=models.CASCADE, related_name="repeated_by"
    )
    # Position in the annotator's sequence in this campaign; repeats look 20 tasks back.
    sequence = models.PositiveIntegerField(default=0)
    closed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(
                fields=["comparison", "annotator"],
                condition=Q(is_repeat=False),
                name="assignment_comparison_once_per_annotator",
            ),
            models.CheckConstraint(
                condition=Q(is_repeat=False) | Q(repeat_of__isnull=False),
                name="assignment_repeat_names_original",
            ),
        ]
        indexes = [
            models.Index(
                fields=["annotator", "campaign", "expires_at"],
                name="assignment_open_by_annotator",
                condition=Q(state="open"),
            ),
            models.Index(
                fields=["expires_at"], name="assignment_open_expiry", condition=Q(state="open")
            ),
        ]

    def __str__(self) -> str:
        return f"assignment {self.pk} ({self.state})"


class Judgment(models.Model):
    assignment = models.OneToOneField(Assignment, on_delete=models.CASCADE, related_name="judgment")
    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="judgments")
    comparison = models.ForeignKey(Comparison, on_delete=models.CASCADE, related_name="judgments")
    annotator = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="judgments"
    )
    answers = models.JSONField()
    presented = models.JSONField()
    duration_ms = models.PositiveIntegerField(null=True, blank=True, help_text="Client-measured.")
    server_ms = models.PositiveIntegerField(help_text="From issue to submit, on the server.")
    is_gold = models.BooleanField(default=False)
    is_repeat = models.BooleanField(default=False)
    gold_correct = models.BooleanField(null=True, blank=True)
    # No client duration: the task was never shown when the answer came (a stray second
    # click on a task still loading, or a script). Kept, but flagged for audits.
    never_shown = models.BooleanField(default=False)
    # Set by gating when the rater is blocked; excluded judgments count nowhere.
    excluded = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["id"]
        indexes = [
            models.Index(fields=["campaign", "annotator", "id"], name="judgment_by_rater"),
            models.Index(fields=["comparison"], name="judgment_by_comparison"),
        ]

    def __str__(self) -> str:
        return f"judgment {self.pk}"


class ImageImport(ClaimedJob):
    """An uploaded import of images, checked and written by a worker on the default queue.

    The upload is kept outside MEDIA_ROOT (settings.IMPORT_ROOT) until the job ends.
    """

    class Status(models.TextChoices):
        PENDING = "pending"
        RUNNING = "running"
        SUCCEEDED = "succeeded"
        FAILED = "failed"

    ACTIVE = (Status.PENDING, Status.RUNNING)

    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="image_imports")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    file_name = models.CharField(max_length=255, help_text="The uploaded file's name.")
    # Absolute path of the kept upload; empty once the job has ended and removed it.
    upload_path = models.CharField(max_length=1000, blank=True)
    size = models.PositiveBigIntegerField()
    sha256 = models.CharField(max_length=64)
    kind = models.CharField(max_length=16)  # zip or parquet
    with_labels = models.BooleanField(default=False)
    build = models.BooleanField(default=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    phase = models.CharField(max_length=16, blank=True)  # checking, writing
    progress_done = models.PositiveIntegerField(default=0)
    progress_total = models.PositiveIntegerField(default=0)
    counts = models.JSONField(default=dict, blank=True)
    error = models.TextField(blank=True)
    error_code = models.CharField(max_length=32, blank=True)
    # Bad rows with their line (manifest) or row index (parquet), the first 50.
    errors = models.JSONField(default=list, blank=True)
    # The claim (attempts, worker, claim_token, heartbeat_at) comes from ClaimedJob.
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            # The same file twice while the first is still queued or running is a duplicate.
            models.UniqueConstraint(
                fields=["campaign", "sha256"],
                condition=Q(status__in=["pending", "running"]),
                name="image_import_active_once",
            ),
        ]

    def __str__(self) -> str:
        return f"image import {self.pk} ({self.status})"


# Quality tables live in their own package; imported here so the app registry sees them.
from annotate.quality.models import *  # noqa: E402,F401,F403
