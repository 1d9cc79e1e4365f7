"""Celery tasks for quality: thin, ids in, one service call each.

Imported by annotate.quality.models so the worker registers them (autodiscovery only
looks at <app>.tasks); hence the service imports inside the functions.
"""

from celery import shared_task


@shared_task(name="quality.rater_evaluate", ignore_result=True)
def rater_evaluate_task(campaign_id: int, user_id: int) -> None:
    from annotate.models import Membership
    from annotate.quality.services import rater_evaluate

    membership = (
        Membership.objects.select_related("campaign", "user")
        .filter(campaign_id=campaign_id, user_id=user_id)
        .first()
    )
    if membership is not None:
        rater_evaluate(campaign=membership.campaign, user=membership.user)


@shared_task(name="quality.recompute_campaign", ignore_result=True)
def quality_recompute_task(campaign_id: int) -> None:
    from annotate.models import Campaign
    from annotate.quality.services import quality_recompute

    campaign = Campaign.objects.filter(pk=campaign_id).first()
    if campaign is not None:
        quality_recompute(campaign=campaign)


@shared_task(name="quality.recompute_all", ignore_result=True)
def quality_recompute_all_task() -> None:
    """Beat entry: one recompute task per campaign that is collecting or paused."""
    from annotate.models import Campaign

    for campaign_id in Campaign.objects.filter(
        status__in=[Campaign.Status.ACTIVE, Campaign.Status.PAUSED]
    ).values_list("id", flat=True):
        quality_recompute_task.delay(campaign_id)


@shared_task(name="quality.active_sampling_refresh", ignore_result=True)
def active_sampling_refresh_task(campaign_id: int) -> None:
    from annotate.models import Campaign
    from annotate.quality.active import active_sampling_refresh

    campaign = Campaign.objects.filter(pk=campaign_id).first()
    if campaign is not None:
        active_sampling_refresh(campaign=campaign)
