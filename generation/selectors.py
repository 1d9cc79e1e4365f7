"""Reads for generation: job progress for the API, the admin and the command line."""

from django.db.models import Count, Q, QuerySet

from annotate.models import Campaign
from generation.models import GenerationItem, GenerationJob, Generator

Status = GenerationItem.Status


def generation_job_progress(*, job: GenerationJob) -> dict:
    """Item counts by status; `finished` counts done and failed items alike."""
    counts = job.items.aggregate(
        total=Count("id"),
        pending=Count("id", filter=Q(status=Status.PENDING)),
        running=Count("id", filter=Q(status=Status.RUNNING)),
        done=Count("id", filter=Q(status=Status.DONE)),
        failed=Count("id", filter=Q(status=Status.FAILED)),
    )
    counts["finished"] = counts["done"] + counts["failed"]
    return counts


def generation_job_errors(*, job: GenerationJob, limit: int = 20) -> list[dict]:
    """The first failed items with their messages (which prompt, which generator, which seed)."""
    rows = (
        job.items.filter(status=Status.FAILED)
        .select_related("generator")
        .order_by("id")
        .only("prompt_id", "generator__name", "seed", "index", "error", "attempts")[:limit]
    )
    return [
        {
            "prompt": item.prompt_id,
            "generator": item.generator.name,
            "index": item.index,
            "seed": item.seed,
            "attempts": item.attempts,
            "error": item.error,
        }
        for item in rows
    ]


def generation_job_list(*, campaign: Campaign) -> QuerySet[GenerationJob]:
    return (
        GenerationJob.objects.filter(campaign=campaign)
        .prefetch_related("generators")
        .order_by("-created_at", "-id")
    )


def generator_list() -> QuerySet[Generator]:
    return Generator.objects.order_by("name")
