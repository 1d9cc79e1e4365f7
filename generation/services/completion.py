"""From images to comparisons: finishing a prompt when its images are in, and a job at the end."""

import logging

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from annotate.models import Campaign, Prompt
from annotate.services.campaigns import campaign_update
from annotate.services.comparisons import comparisons_build_for_prompt
from annotate.services.gold import gold_top_up
from generation.models import GenerationItem, GenerationJob
from webhooks.events import generation_job_announce

logger = logging.getLogger(__name__)

ERROR_NOTHING_GENERATED = "No image could be generated; see the items' errors."
ERROR_GOLD_FAILED = "Images and comparisons are in, but gold items could not be made: {error}"


def prompt_finish_if_complete(*, job: GenerationJob, prompt_id: int) -> int:
    """Build the prompt's comparisons once none of the job's items for it is open.

    Returns how many comparisons were created. The prompt row is locked so that two workers
    finishing the prompt's last items (one per generator) do not both build its comparisons.
    """
    with transaction.atomic():
        prompt = Prompt.objects.select_for_update().get(pk=prompt_id)
        still_open = GenerationItem.objects.filter(
            job=job, prompt_id=prompt_id, status__in=GenerationItem.OPEN
        ).exists()
        if still_open:
            return 0
        created = comparisons_build_for_prompt(campaign=job.campaign, prompt=prompt)
        if created:
            GenerationJob.objects.filter(pk=job.pk).update(
                comparisons_created=F("comparisons_created") + len(created)
            )
        return len(created)


def _make_gold(job: GenerationJob) -> int:
    # Top up to the target: a second job on the campaign does not pile on more gold.
    return gold_top_up(campaign=job.campaign, wanted=job.gold_count, seed=job.pk)


def generation_job_finish_if_complete(*, job_id: int) -> bool:
    """Close the job when no item is open: rebuild any missing comparisons, make gold, and
    move the campaign from generating to active. Returns True when this call closed it.

    Runs under a lock on the job row, so only one worker closes a job, once.
    """
    with transaction.atomic():
        job = (
            GenerationJob.objects.select_for_update()
            .select_related("campaign")
            .filter(pk=job_id)
            .first()
        )
        if job is None or job.status not in GenerationJob.ACTIVE:
            return False
        if job.items.filter(status__in=GenerationItem.OPEN).exists():
            return False
        now = timezone.now()
        made = job.items.filter(status=GenerationItem.Status.DONE).exists()
        if not made:
            job.status = GenerationJob.Status.FAILED
            job.error = ERROR_NOTHING_GENERATED
            job.finished_at = now
            job.save(update_fields=["status", "error", "finished_at"])
            generation_job_announce(job=job)
            return True
        # Per-prompt building happens as prompts complete; this catches any a crash skipped.
        prompt_ids = job.items.values_list("prompt_id", flat=True).distinct().order_by()
        for prompt in Prompt.objects.filter(pk__in=prompt_ids).order_by("id").iterator(500):
            job.comparisons_created += len(
                comparisons_build_for_prompt(campaign=job.campaign, prompt=prompt)
            )
        try:
            with transaction.atomic():
                job.gold_created = _make_gold(job)
        except Exception as error:  # gold is a bonus: the images and comparisons stand
            logger.exception("gold for generation job %s failed", job.pk)
            job.error = ERROR_GOLD_FAILED.format(error=error)
        job.status = GenerationJob.Status.DONE
        job.finished_at = now
        job.save(
            update_fields=["status", "error", "finished_at", "comparisons_created", "gold_created"]
        )
        campaign = Campaign.objects.get(pk=job.campaign_id)
        if campaign.status == Campaign.Status.GENERATING:
            campaign_update(campaign=campaign, status=Campaign.Status.ACTIVE)
        generation_job_announce(job=job)
        return True
