"""Fetch-and-authorise helpers: one per object type, used by every view.

Each returns the object when the user may see it, raises Http404 when the object is not
visible to them (so existence does not leak) and PermissionDenied when they may see it but
not do what they asked.
"""

from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import PermissionDenied
from django.http import Http404

from annotate.models import Assignment, Campaign, ImageImport, Membership
from pickwise.errors import ApplicationError

MANAGERS = (Membership.Role.ADMIN,)
READERS = (Membership.Role.ADMIN, Membership.Role.RESEARCHER)


def user_is_site_admin(user: AbstractBaseUser) -> bool:
    return bool(user.is_authenticated and user.is_superuser)


def user_is_site_researcher(user: AbstractBaseUser) -> bool:
    if user_is_site_admin(user):
        return True
    return bool(user.is_authenticated and user.groups.filter(name="researchers").exists())


def user_may_create_campaigns(user: AbstractBaseUser) -> bool:
    return bool(
        user.is_authenticated
        and (
            user.is_superuser
            or user.is_staff
            or user.groups.filter(name="campaign-admins").exists()
        )
    )


MAY_NOT_CREATE_CAMPAIGNS = "You may not create campaigns."


def campaign_creator_authorise(*, user: AbstractBaseUser) -> None:
    """403 unless the user may create campaigns (checked before the request body is read)."""
    if not user_may_create_campaigns(user):
        raise ApplicationError(MAY_NOT_CREATE_CAMPAIGNS, code="permission_denied", status=403)


def campaign_role(*, user: AbstractBaseUser, campaign: Campaign) -> str | None:
    """The user's role in the campaign; site admins act as campaign admins everywhere."""
    if not user.is_authenticated:
        return None
    if user_is_site_admin(user):
        return Membership.Role.ADMIN
    role = (
        Membership.objects.filter(user=user, campaign=campaign)
        .values_list("role", flat=True)
        .first()
    )
    if role is None and user_is_site_researcher(user):
        return Membership.Role.RESEARCHER
    return role


def campaign_authorise(
    *, user: AbstractBaseUser, campaign: Campaign, roles: tuple[str, ...] | None = None
) -> str:
    """The user's role in the campaign: Http404 without one, PermissionDenied if not in `roles`.

    Objects that belong to a campaign (exports, jobs) are authorised through their campaign.
    """
    role = campaign_role(user=user, campaign=campaign)
    if role is None:
        raise Http404
    if roles is not None and role not in roles:
        raise PermissionDenied
    return role


def campaign_get_for_user(
    *, user: AbstractBaseUser, campaign_id: int, roles: tuple[str, ...] | None = None
) -> Campaign:
    """The campaign if the user is a member; PermissionDenied if their role is not in `roles`."""
    return campaign_and_role_for_user(user=user, campaign_id=campaign_id, roles=roles)[0]


def campaign_and_role_for_user(
    *, user: AbstractBaseUser, campaign_id: int, roles: tuple[str, ...] | None = None
) -> tuple[Campaign, str]:
    """As campaign_get_for_user, with the user's role, read once."""
    try:
        campaign = Campaign.objects.get(pk=campaign_id)
    except (Campaign.DoesNotExist, ValueError, TypeError):
        raise Http404 from None
    return campaign, campaign_authorise(user=user, campaign=campaign, roles=roles)


def campaign_get_for_annotator(
    *, user: AbstractBaseUser, campaign_id: int
) -> tuple[Campaign, Membership]:
    """The campaign and the user's membership, which must be an annotator's."""
    membership = None
    if user.is_authenticated:
        membership = (
            Membership.objects.select_related("campaign")
            .filter(user=user, campaign_id=campaign_id)
            .first()
        )
    if membership is None:
        raise Http404
    if membership.role != Membership.Role.ANNOTATOR:
        raise PermissionDenied
    return membership.campaign, membership


def assignment_get_for_annotator(*, user: AbstractBaseUser, assignment_id: int) -> Assignment:
    """The user's own assignment; another annotator's is indistinguishable from a missing one."""
    if not user.is_authenticated:
        raise Http404
    try:
        return Assignment.objects.select_related("campaign").get(pk=assignment_id, annotator=user)
    except (Assignment.DoesNotExist, ValueError, TypeError):
        raise Http404 from None


def image_import_get_for_user(*, user: AbstractBaseUser, import_id: int) -> ImageImport:
    """An image import, for those who see its campaign's admin side (admins, researchers);
    annotators get 403, anyone else 404 as for a missing import."""
    if not user.is_authenticated:
        raise Http404
    try:
        job = ImageImport.objects.select_related("campaign", "created_by").get(pk=import_id)
    except (ImageImport.DoesNotExist, ValueError, TypeError):
        raise Http404 from None
    campaign_authorise(user=user, campaign=job.campaign, roles=READERS)
    return job
