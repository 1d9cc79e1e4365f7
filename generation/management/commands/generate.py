"""Generate a campaign's images: enqueue a job for the generate workers, or run it here.

manage.py generate --campaign SLUG [--generator NAME ...] [--seeds N] [--sync]
manage.py generate --resume      # give back lost claims and re-send pending items
"""

import os
import socket

from django.core.management.base import BaseCommand, CommandError

from annotate.models import Campaign
from generation.models import GenerationJob, Generator
from generation.selectors import generation_job_errors, generation_job_progress
from generation.services.jobs import generation_job_create, generation_job_start
from generation.services.recovery import generation_items_recover
from generation.services.sync import generation_job_run_sync
from pickwise.errors import ApplicationError


class Command(BaseCommand):
    help = "Generate images for a campaign's prompts with one or more generators."

    def add_arguments(self, parser):
        parser.add_argument("--campaign", help="campaign slug")
        parser.add_argument(
            "--generator",
            action="append",
            default=[],
            help="generator name (repeat for several); default: every generator",
        )
        parser.add_argument("--seeds", type=int, default=1, help="images per prompt and generator")
        parser.add_argument(
            "--seed", type=int, default=0, help="job seed the item seeds derive from"
        )
        parser.add_argument(
            "--gold", type=int, default=None, help="gold items wanted (default max(15, 2%%))"
        )
        parser.add_argument(
            "--sync", action="store_true", help="generate here instead of enqueuing"
        )
        parser.add_argument(
            "--resume",
            action="store_true",
            help="give back lost claims and re-send pending items of running jobs",
        )

    def handle(self, *args, **options):
        if options["resume"]:
            counts = generation_items_recover(resend_pending=True)
            self.stdout.write(
                f"{counts['released']} items given back, {counts['batches_sent']} batches sent, "
                f"{counts['jobs_closed']} jobs closed."
            )
            return
        if not options["campaign"]:
            raise CommandError("--campaign SLUG is required.")
        campaign = Campaign.objects.filter(slug=options["campaign"]).first()
        if campaign is None:
            raise CommandError(f"No campaign with slug {options['campaign']!r}.")
        generators = options["generator"] or list(Generator.objects.values_list("name", flat=True))
        if not generators:
            raise CommandError("No generators exist; add one in the admin first.")
        start = {
            "campaign": campaign,
            "generators": generators,
            "seeds_per_prompt": options["seeds"],
            "seed": options["seed"],
            "gold_count": options["gold"],
        }
        try:
            if options["sync"]:
                job = generation_job_create(**start)
            else:
                job = generation_job_start(**start)
        except ApplicationError as error:
            raise CommandError(error.message) from None
        total = generation_job_progress(job=job)["total"]
        self.stdout.write(
            f"Job {job.pk}: {total} images ({len(generators)} generators x "
            f"{options['seeds']} seeds x {campaign.prompts.count()} prompts)."
        )
        if not options["sync"]:
            self.stdout.write(
                f"Enqueued on the generate queue; follow /api/generation-jobs/{job.pk}/."
            )
            return
        worker = f"sync-{os.getpid()}@{socket.gethostname()}"

        def report(finished: int) -> None:
            self.stdout.write(f"  {finished}/{total} images")

        try:
            generation_job_run_sync(job=job, worker=worker, progress=report)
        except Exception as error:
            raise CommandError(f"Generation stopped: {error}") from error
        self._summary(job)

    def _summary(self, job: GenerationJob) -> None:
        job.refresh_from_db()
        progress = generation_job_progress(job=job)
        self.stdout.write(
            f"Job {job.pk} {job.status}: {progress['done']} images, {progress['failed']} failed, "
            f"{job.comparisons_created} comparisons, {job.gold_created} gold."
        )
        for error in generation_job_errors(job=job, limit=5):
            self.stderr.write(
                f"  prompt {error['prompt']} / {error['generator']} / seed {error['seed']}: "
                f"{error['error']}"
            )
        if job.error:
            self.stderr.write(job.error)
        if job.status == GenerationJob.Status.FAILED:
            raise CommandError("No image could be generated.")
