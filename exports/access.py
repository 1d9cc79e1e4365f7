"""Fetch-and-authorise for exports: campaign admins and researchers only.

Annotators of the campaign get 403 (they know the campaign exists); anyone else gets 404,
as for a missing export, so ids do not leak. A combined export asks this of every campaign
in it.
"""

from django.contrib.auth.models import AbstractBaseUser
from django.http import Http404

from annotate.access import READERS, campaign_authorise
from annotate.models import Campaign
from exports.models import Export


def export_get_for_user(*, user: AbstractBaseUser, export_id: int) -> Export:
    if not user.is_authenticated:
        raise Http404
    try:
        export = Export.objects.select_related("campaign").get(pk=export_id)
    except (Export.DoesNotExist, ValueError, TypeError):
        raise Http404 from None
    campaign_authorise(user=user, campaign=export.campaign, roles=READERS)
    if export.sources:
        # A combined export holds every source campaign's judgments: read all or none.
        for campaign in Campaign.objects.filter(pk__in=export.sources).exclude(
            pk=export.campaign_id
        ):
            campaign_authorise(user=user, campaign=campaign, roles=READERS)
    return export
