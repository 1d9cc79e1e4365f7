"""Fetch-and-authorise helpers for the objects only the pages act on."""

from django.contrib.auth.models import AbstractBaseUser
from django.http import Http404

from annotate.access import MANAGERS, campaign_get_for_user
from annotate.models import Membership


def rater_membership_get_for_manager(
    *, user: AbstractBaseUser, campaign_id: int, rater_id: int
) -> Membership:
    """An annotator's membership in a campaign the user manages (404 / 403 as usual)."""
    campaign = campaign_get_for_user(user=user, campaign_id=campaign_id, roles=MANAGERS)
    membership = (
        Membership.objects.select_related("user", "campaign")
        .filter(campaign=campaign, user_id=rater_id, role=Membership.Role.ANNOTATOR)
        .first()
    )
    if membership is None:
        raise Http404
    return membership
