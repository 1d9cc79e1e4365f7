"""Generator specs, and generation jobs that turn a campaign's prompts into images.

A job expands prompts x generators x seeds into GenerationItem rows. Workers claim items with
conditional updates (pending -> running), so a redelivered or duplicated task message does no
work twice, and the unique image per (prompt, generator, seed) makes storing idempotent.
"""

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q

from pickwise.jobs import ClaimedJob
from pickwise.model_folders import model_folder_error

# Ranges the API, the command and the admin share.
MAX_SEEDS_PER_PROMPT = 64
MAX_JOB_SEED = 2**31 - 1


class Generator(models.Model):
    class DType(models.TextChoices):
        AUTO = "auto"
        FLOAT16 = "float16"
        BFLOAT16 = "bfloat16"
        FLOAT32 = "float32"

    # What exports call model_0 / model_1.
    name = models.CharField(max_length=200, unique=True)
    source = models.CharField(max_length=500, help_text="A local diffusers folder or a hub id.")
    pipeline_class = models.CharField(
        max_length=100, blank=True, help_text="Blank: from model_index.json."
    )
    scheduler = models.CharField(max_length=100, blank=True, help_text="Blank: the pipeline's own.")
    scheduler_options = models.JSONField(
        default=dict,
        blank=True,
        help_text='Extra scheduler config, e.g. {"use_karras_sigmas": true}.',
    )
    steps = models.PositiveSmallIntegerField(
        default=25, validators=[MinValueValidator(1), MaxValueValidator(1000)]
    )
    guidance = models.FloatField(
        default=7.5, validators=[MinValueValidator(0.0), MaxValueValidator(50.0)]
    )
    width = models.PositiveIntegerField(default=512)
    height = models.PositiveIntegerField(default=512)
    dtype = models.CharField(max_length=16, choices=DType.choices, default=DType.AUTO)
    negative_prompt = models.TextField(blank=True)
    extra = models.JSONField(
        default=dict, blank=True, help_text="Extra pipeline keyword arguments."
    )
    lora_path = models.CharField(
        max_length=500, blank=True, help_text="Optional LoRA folder to load."
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.CheckConstraint(
                condition=Q(width__gte=8, height__gte=8, width__lte=4096, height__lte=4096),
                name="generator_size_in_range",
            ),
        ]

    def __str__(self) -> str:
        return self.name

    def to_spec(self):
        """The backend's plain spec for this row (torch-free)."""
        from generation.backends import GeneratorSpec

        return GeneratorSpec(
            name=self.name,
            source=(self.source or "").strip(),
            pipeline_class=self.pipeline_class or None,
            scheduler=self.scheduler or None,
            scheduler_options=self.scheduler_options,
            steps=self.steps,
            guidance=self.guidance,
            width=self.width,
            height=self.height,
            dtype=self.dtype,
            negative_prompt=self.negative_prompt,
            extra=self.extra,
            lora_path=(self.lora_path or "").strip() or None,
        )

    def clean(self) -> None:
        # The same checks the worker runs, without loading weights: a missing folder or an
        # unknown scheduler is a form error here instead of a crash on a GPU box later.
        from generation.backends import SpecError, validate_spec
        from generation.backends.spec import is_local_source

        try:
            spec = self.to_spec()
        except (TypeError, ValueError):
            return  # a field of the wrong type; clean_fields() reports it
        errors: dict[str, str] = {}
        try:
            validate_spec(spec)
        except SpecError as error:
            errors.update(error.errors)
        # Checked on the web side only, and over the spec's own verdict on those fields, so
        # the answer for a path outside the roots never tells whether it exists.
        source = (spec.source or "").strip()
        local = bool(source) and is_local_source(source)
        if local and (problem := model_folder_error(source, field="source")):
            errors["source"] = problem
        if spec.lora_path and (problem := model_folder_error(spec.lora_path, field="lora_path")):
            errors["lora_path"] = problem
        if errors:
            raise ValidationError(errors)


class GenerationJob(models.Model):
    class Status(models.TextChoices):
        PENDING = "pending"  # created, items not picked up yet
        RUNNING = "running"
        DONE = "done"  # every item finished; some may have failed (see the counts)
        FAILED = "failed"  # nothing could be generated
        CANCELLED = "cancelled"

    ACTIVE = (Status.PENDING, Status.RUNNING)

    campaign = models.ForeignKey(
        "annotate.Campaign", on_delete=models.CASCADE, related_name="generation_jobs"
    )
    generators = models.ManyToManyField(Generator, related_name="jobs")
    seeds_per_prompt = models.PositiveSmallIntegerField(
        validators=[MinValueValidator(1), MaxValueValidator(MAX_SEEDS_PER_PROMPT)]
    )
    # Item seeds derive from this, so the same job settings reproduce the same images.
    seed = models.PositiveIntegerField(default=0, validators=[MaxValueValidator(MAX_JOB_SEED)])
    # Automatic gold items wanted in the campaign once the job is done; null: a default.
    gold_count = models.PositiveIntegerField(null=True, blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    error = models.TextField(blank=True)
    comparisons_created = models.PositiveIntegerField(default=0)
    gold_created = models.PositiveIntegerField(default=0)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            # One job at a time per campaign: a second start while one runs is refused.
            models.UniqueConstraint(
                fields=["campaign"],
                condition=Q(status__in=["pending", "running"]),
                name="generation_job_one_active_per_campaign",
            ),
        ]

    def __str__(self) -> str:
        return f"generation job {self.pk} ({self.status})"


class GenerationItem(ClaimedJob):
    """One image to make: a prompt, a generator and the index-th seed for that prompt."""

    class Status(models.TextChoices):
        PENDING = "pending"
        RUNNING = "running"
        DONE = "done"
        FAILED = "failed"

    OPEN = (Status.PENDING, Status.RUNNING)

    job = models.ForeignKey(GenerationJob, on_delete=models.CASCADE, related_name="items")
    prompt = models.ForeignKey("annotate.Prompt", on_delete=models.CASCADE, related_name="+")
    generator = models.ForeignKey(Generator, on_delete=models.PROTECT, related_name="+")
    index = models.PositiveSmallIntegerField()
    seed = models.BigIntegerField()
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    # Who holds a running item (ClaimedJob): the claim token of one task run, the worker's
    # node name (so a restarted worker can give back what it held when it was killed), and
    # heartbeat_at, the time of the claim (a batch writes no other sign of life).
    image = models.ForeignKey(
        "annotate.Image", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    error = models.TextField(blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(
                fields=["job", "prompt", "generator", "index"], name="generation_item_once"
            ),
        ]
        indexes = [
            models.Index(fields=["job", "status"], name="generation_item_by_status"),
            models.Index(fields=["job", "prompt", "status"], name="generation_item_by_prompt"),
            models.Index(
                fields=["heartbeat_at"],
                name="generation_item_running",
                condition=Q(status="running"),
            ),
        ]

    def __str__(self) -> str:
        return f"item {self.pk} ({self.status})"
