"""Export snapshots: who asked for which data in which format, and where the files are.

A finished export is immutable: its folder, manifest and counts never change. Asking again
makes a new version (per campaign and format).
"""

from django.conf import settings
from django.db import models
from django.db.models import Q

from pickwise.jobs import ClaimedJob


def default_policy() -> dict:
    return {"states": ["active", "warned"], "exclude_gold": True, "exclude_repeats": True}


def default_splits() -> dict:
    return {"validation": 0.05, "test": 0.05, "max_prompts": 500}


class Export(ClaimedJob):
    class Format(models.TextChoices):
        PICKAPIC = "pickapic"
        RANKED = "ranked"
        IMAGE_PREFERENCE = "image_preference"
        JSONL = "jsonl"

    class Status(models.TextChoices):
        PENDING = "pending"
        RUNNING = "running"
        FINISHED = "finished"
        FAILED = "failed"

    campaign = models.ForeignKey(
        "annotate.Campaign", on_delete=models.PROTECT, related_name="exports"
    )
    # A combined export: the ids of every campaign in it, in the order given (`campaign` is
    # the first). Empty for an export of one campaign.
    sources = models.JSONField(default=list, blank=True)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    version = models.PositiveIntegerField()
    format = models.CharField(max_length=16, choices=Format.choices)
    criterion = models.CharField(max_length=32, default="overall")
    # Which rater states are included and whether gold and repeats are left out.
    policy = models.JSONField(default=default_policy)
    # Fractions of prompts for validation and test, and the cap on each.
    splits = models.JSONField(default=default_splits)
    seed = models.BigIntegerField(default=0)
    # Benchmarks only: leave jpg_* empty to measure the data path without image encoding.
    include_images = models.BooleanField(default=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    progress_done = models.PositiveBigIntegerField(default=0)
    progress_total = models.PositiveBigIntegerField(default=0)
    # Absolute path of the finished folder; empty until the export has one.
    folder = models.CharField(max_length=1000, blank=True)
    manifest = models.JSONField(null=True, blank=True)
    error = models.TextField(blank=True)
    # The running build's claim (worker, claim_token, heartbeat_at, attempts: builds started)
    # comes from ClaimedJob. Hidden folder the running build writes into; removed when the build is reclaimed.
    work_folder = models.CharField(max_length=1000, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["campaign", "format", "version"], name="export_version_once"
            ),
            models.CheckConstraint(condition=Q(version__gte=1), name="export_version_positive"),
            models.CheckConstraint(
                condition=Q(progress_done__lte=models.F("progress_total")),
                name="export_progress_within_total",
            ),
        ]
        indexes = [
            models.Index(
                fields=["heartbeat_at"],
                condition=Q(status="running"),
                name="export_running",
            ),
        ]

    def __str__(self) -> str:
        return f"export {self.pk} ({self.format} v{self.version})"

    @property
    def campaign_ids(self) -> list[int]:
        """Every campaign the export reads, the first being `campaign`."""
        return list(self.sources) or [self.campaign_id]
