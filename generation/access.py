"""Fetch-and-authorise for generation jobs: visible to the campaign's members, run by its admins."""

from django.contrib.auth.models import AbstractBaseUser
from django.http import Http404

from annotate.access import campaign_authorise
from annotate.models import Membership
from generation.models import GenerationJob


def generation_job_get_for_user(
    *, user: AbstractBaseUser, job_id: int, roles: tuple[str, ...] = (Membership.Role.ADMIN,)
) -> GenerationJob:
    """The job if the user has a role in its campaign (404 otherwise); 403 unless in `roles`."""
    if not user.is_authenticated:
        raise Http404
    try:
        job = GenerationJob.objects.select_related("campaign").get(pk=job_id)
    except (GenerationJob.DoesNotExist, ValueError, TypeError):
        raise Http404 from None
    campaign_authorise(user=user, campaign=job.campaign, roles=roles)
    return job


def user_may_list_generators(user: AbstractBaseUser) -> bool:
    """Generator specs are site-wide; anyone who runs generation somewhere may read them."""
    from annotate.access import user_is_site_admin, user_may_create_campaigns

    if user_is_site_admin(user) or user_may_create_campaigns(user):
        return True
    return bool(
        user.is_authenticated
        and Membership.objects.filter(user=user, role=Membership.Role.ADMIN).exists()
    )
