"""Fetch-and-authorise for training jobs: the researchers and admins of the export's campaign.

Annotators of that campaign get 403 (they know the campaign exists); anyone else gets 404, as
for a missing job, so ids do not leak.
"""

from django.contrib.auth.models import AbstractBaseUser
from django.http import Http404

from annotate.access import READERS, campaign_authorise
from training.models import TrainingJob


def training_job_get_for_user(*, user: AbstractBaseUser, job_id: int) -> TrainingJob:
    if not user.is_authenticated:
        raise Http404
    try:
        job = TrainingJob.objects.select_related("export__campaign").get(pk=job_id)
    except (TrainingJob.DoesNotExist, ValueError, TypeError):
        raise Http404 from None
    campaign_authorise(user=user, campaign=job.export.campaign, roles=READERS)
    return job
