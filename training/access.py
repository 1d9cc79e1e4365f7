"""Fetch-and-authorise for training jobs: the researchers and admins of the export's campaign.

Annotators of that campaign get 403 (they know the campaign exists); anyone else gets 404, as
for a missing job, so ids do not leak.
"""

from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import PermissionDenied
from django.http import Http404

from annotate.access import READERS, campaign_role
from training.models import TrainingJob


def training_job_get_for_user(*, user: AbstractBaseUser, job_id: int) -> TrainingJob:
    if not user.is_authenticated:
        raise Http404
    try:
        job = TrainingJob.objects.select_related("export__campaign").get(pk=job_id)
    except (TrainingJob.DoesNotExist, ValueError, TypeError):
        raise Http404 from None
    role = campaign_role(user=user, campaign=job.export.campaign)
    if role is None:
        raise Http404
    if role not in READERS:
        raise PermissionDenied
    return job
