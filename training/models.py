"""Training jobs: one run of the DPO/MaPO/RankDPO trainer on an export, and the metrics it reported.

A job is claimed by one train worker at a time with a conditional update that sets a fresh
claim token; every progress write is conditional on that token, so a runner whose job was
taken back (its worker was presumed dead) notices and stops instead of writing over the next
attempt. The metric series is one row per optimizer step.
"""

from django.conf import settings
from django.db import models
from django.db.models import Q

from pickwise.jobs import ClaimedJob


class TrainingJob(ClaimedJob):
    class Method(models.TextChoices):
        DPO = "dpo"
        MAPO = "mapo"
        RANKDPO = "rankdpo"  # RankDPO on a ranked export

    class Mode(models.TextChoices):
        LORA = "lora"
        FULL = "full"

    class Status(models.TextChoices):
        QUEUED = "queued"  # waiting for a train worker (first start or after a dead worker)
        RUNNING = "running"
        DONE = "done"
        FAILED = "failed"
        CANCELLED = "cancelled"

    ACTIVE = (Status.QUEUED, Status.RUNNING)

    export = models.ForeignKey(
        "exports.Export", on_delete=models.PROTECT, related_name="training_jobs"
    )
    name = models.CharField(max_length=200, blank=True)
    pretrained = models.CharField(max_length=1000, help_text="Base diffusers pipeline folder.")
    method = models.CharField(max_length=8, choices=Method.choices, default=Method.DPO)
    mode = models.CharField(max_length=8, choices=Mode.choices, default=Mode.LORA)
    # Trainer hyper-parameters given at start (training.options checks them); the trainer
    # fills the rest with its documented defaults.
    options = models.JSONField(default=dict, blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    cancel_requested = models.BooleanField(default=False)
    output_dir = models.CharField(max_length=1000, blank=True)
    step = models.PositiveIntegerField(default=0)
    max_steps = models.PositiveIntegerField(default=0)
    latest_metrics = models.JSONField(default=dict, blank=True)
    warnings = models.JSONField(default=list, blank=True)
    error = models.TextField(blank=True)
    # The claim (attempts, worker, claim_token, heartbeat_at) comes from ClaimedJob; the
    # runner passes --resume auto from the second attempt on.
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    # The evaluation loop: base vs tuned on the export's held-out prompts.
    evaluation_campaign = models.ForeignKey(
        "annotate.Campaign", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    base_generator = models.ForeignKey(
        "generation.Generator",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    tuned_generator = models.ForeignKey(
        "generation.Generator",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(
                fields=["heartbeat_at"],
                name="training_job_running",
                condition=Q(status="running"),
            ),
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(step__lte=models.F("max_steps")) | Q(max_steps=0),
                name="training_job_step_within_max",
            ),
        ]

    def __str__(self) -> str:
        return f"training job {self.pk} ({self.status})"


class TrainingMetric(models.Model):
    """One optimizer step's figures as the trainer wrote them (loss, implicit_acc, ...)."""

    job = models.ForeignKey(TrainingJob, on_delete=models.CASCADE, related_name="metrics")
    step = models.PositiveIntegerField()
    values = models.JSONField(default=dict)

    class Meta:
        ordering = ["job", "step"]
        constraints = [
            models.UniqueConstraint(fields=["job", "step"], name="training_metric_once"),
        ]

    def __str__(self) -> str:
        return f"job {self.job_id} step {self.step}"
