"""Fetch-and-authorise for exports: campaign admins and researchers only.

Annotators of the campaign get 403 (they know the campaign exists); anyone else gets 404,
as for a missing export, so ids do not leak.
"""

from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import PermissionDenied
from django.http import Http404

from annotate.access import READERS, campaign_role
from exports.models import Export


def export_get_for_user(*, user: AbstractBaseUser, export_id: int) -> Export:
    if not user.is_authenticated:
        raise Http404
    try:
        export = Export.objects.select_related("campaign").get(pk=export_id)
    except (Export.DoesNotExist, ValueError, TypeError):
        raise Http404 from None
    role = campaign_role(user=user, campaign=export.campaign)
    if role is None:
        raise Http404
    if role not in READERS:
        raise PermissionDenied
    return export
