"""Fetch-and-authorise for webhooks: a campaign's endpoints belong to its admins,
site-wide endpoints to staff. Others get 404 (a campaign's annotators and researchers 403,
as for the campaign's other admin objects)."""

from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import PermissionDenied
from django.http import Http404

from annotate.access import MANAGERS, campaign_authorise
from webhooks.models import Webhook


def webhook_get_for_user(*, user: AbstractBaseUser, webhook_id: int) -> Webhook:
    if not user.is_authenticated:
        raise Http404
    try:
        webhook = Webhook.objects.select_related("campaign").get(pk=webhook_id)
    except (Webhook.DoesNotExist, ValueError, TypeError):
        raise Http404 from None
    if webhook.campaign is None:
        if not user.is_staff:
            raise Http404
    else:
        campaign_authorise(user=user, campaign=webhook.campaign, roles=MANAGERS)
    return webhook


def user_may_manage_site_webhooks(user: AbstractBaseUser) -> bool:
    return user.is_authenticated and user.is_staff


def site_webhooks_authorise(user: AbstractBaseUser) -> None:
    if not user_may_manage_site_webhooks(user):
        raise PermissionDenied
