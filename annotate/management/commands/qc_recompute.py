"""Rebuild rater counters and agreement from the ratings, then apply the gating rules."""

from django.core.management.base import BaseCommand, CommandError

from annotate.models import Campaign
from annotate.quality.services import quality_recompute

NO_CAMPAIGN = "No campaign with slug {slug!r}."


class Command(BaseCommand):
    help = "Recompute quality statistics for one campaign (--campaign) or all active ones."

    def add_arguments(self, parser):
        parser.add_argument("--campaign", help="campaign slug; all active campaigns if left out")
        parser.add_argument("--no-gating", action="store_true", help="do not apply the rules")

    def handle(self, *args, campaign: str | None, no_gating: bool, **options):
        if campaign:
            campaigns = list(Campaign.objects.filter(slug=campaign))
            if not campaigns:
                raise CommandError(NO_CAMPAIGN.format(slug=campaign))
        else:
            campaigns = list(Campaign.objects.filter(status=Campaign.Status.ACTIVE))
        for found in campaigns:
            timings = quality_recompute(campaign=found, evaluate=not no_gating)
            self.stdout.write(
                f"{found.slug}: {timings['raters']} raters in {timings['total_s']:.2f} s"
                f" (gate moves: {timings.get('gate_moves', 0)})"
            )
