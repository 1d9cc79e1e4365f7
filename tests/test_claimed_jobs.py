"""The claimed-job pattern shared by exports, training jobs, image imports and generation
items (pickwise/jobs.py): claim, lose a claim to recovery, give up after too many attempts;
and the renamed settings still read under their old names.

Each kind's own recovery (what re-queued and failed mean for it) is tested beside the kind:
tests/exports/test_export_recovery.py, tests/training/test_jobs_services.py,
tests/annotate/test_image_import_jobs.py, tests/generation/test_batches.py.
"""

import io
from datetime import timedelta

import pytest
from django.utils import timezone

from annotate.models import ImageImport
from annotate.services.image_imports.jobs import DIED_TOO_OFTEN, image_import_create
from exports.models import Export
from generation.models import GenerationItem
from pickwise.jobs import (
    RUNNING,
    ClaimedJob,
    job_claim,
    job_held,
    jobs_reclaim,
)
from pickwise.renamed_settings import RenamedSettingWarning, renamed_int
from tests.factories import CampaignFactory, manifest_zip
from training.models import TrainingJob

TIMEOUT = 60
MAX_ATTEMPTS = 2
GAVE_UP = "Its worker stopped {attempts} times; giving up."


def _pending() -> ImageImport:
    return image_import_create(
        campaign=CampaignFactory(), upload=io.BytesIO(manifest_zip(prompts=1)), file_name="a.zip"
    )


def _claim(job: ImageImport, worker: str) -> tuple[str, int]:
    return job_claim(
        claimable=ImageImport.objects.filter(pk=job.pk, status=ImageImport.Status.PENDING),
        worker=worker,
    )


def _reclaim(*, worker: str | None = None):
    return jobs_reclaim(
        jobs=ImageImport.objects.all(),
        timeout=TIMEOUT,
        max_attempts=MAX_ATTEMPTS,
        worker=worker,
        requeue=lambda held, job: bool(held.update(status=ImageImport.Status.PENDING)),
        fail=lambda held, job: bool(
            held.update(
                status=ImageImport.Status.FAILED, error=GAVE_UP.format(attempts=job.attempts)
            )
        ),
    )


def _go_silent(job: ImageImport, *, seconds: int) -> None:
    ImageImport.objects.filter(pk=job.pk).update(
        heartbeat_at=timezone.now() - timedelta(seconds=seconds)
    )


@pytest.mark.parametrize("model", [Export, TrainingJob, ImageImport, GenerationItem])
def test_every_kind_of_job_is_a_claimed_job_whose_running_status_the_helpers_use(model):
    assert issubclass(model, ClaimedJob)
    assert model.Status.RUNNING == RUNNING
    names = {"attempts", "worker", "claim_token", "heartbeat_at"}
    assert names <= {field.name for field in model._meta.get_fields()}


@pytest.mark.django_db
def test_a_second_claim_of_the_same_job_takes_nothing():
    job = _pending()
    token, claimed = _claim(job, "w1@host")
    assert claimed == 1
    assert _claim(job, "w2@host")[1] == 0
    job.refresh_from_db()
    assert (job.status, job.worker, job.claim_token, job.attempts) == (
        RUNNING,
        "w1@host",
        token,
        1,
    )
    assert job.heartbeat_at is not None


@pytest.mark.django_db
def test_a_job_with_a_fresh_heartbeat_is_left_to_its_worker():
    job = _pending()
    _claim(job, "w1@host")
    _go_silent(job, seconds=TIMEOUT - 5)  # well inside the timeout, whatever the clock does
    assert _reclaim().requeued == []
    job.refresh_from_db()
    assert job.status == RUNNING


@pytest.mark.django_db
def test_a_stale_job_is_requeued_its_old_holder_writes_nothing_and_the_next_claim_counts():
    job = _pending()
    _claim(job, "w1@host")
    job.refresh_from_db()
    old_holder = job_held(job=job)
    _go_silent(job, seconds=TIMEOUT + 1)
    assert _reclaim().requeued == [job.pk]
    assert old_holder.update(error="late write") == 0
    token, claimed = _claim(job, "w2@host")
    job.refresh_from_db()
    assert (claimed, job.worker, job.claim_token, job.attempts, job.error) == (
        1,
        "w2@host",
        token,
        2,
        "",
    )


@pytest.mark.django_db
def test_a_job_held_by_a_worker_that_starts_again_is_taken_back_however_fresh():
    mine, other = _pending(), _pending()
    _claim(mine, "w1@host")
    _claim(other, "w2@host")
    assert _reclaim(worker="w1@host").requeued == [mine.pk]
    other.refresh_from_db()
    assert (other.status, other.worker) == (RUNNING, "w2@host")


@pytest.mark.django_db
def test_a_job_that_had_its_share_of_attempts_fails_with_the_kinds_message():
    job = _pending()
    for worker in ("w1@host", "w2@host"):
        _claim(job, worker)
        _go_silent(job, seconds=TIMEOUT + 1)
        reclaimed = _reclaim()
    assert (reclaimed.requeued, reclaimed.failed) == ([], [job.pk])
    job.refresh_from_db()
    assert (job.status, job.attempts) == (ImageImport.Status.FAILED, MAX_ATTEMPTS)
    assert job.error == GAVE_UP.format(attempts=MAX_ATTEMPTS)


@pytest.mark.django_db
def test_settle_ends_a_job_its_own_way_before_the_attempts_check():
    job = _pending()
    _claim(job, "w1@host")
    ImageImport.objects.filter(pk=job.pk).update(attempts=MAX_ATTEMPTS)
    _go_silent(job, seconds=TIMEOUT + 1)
    reclaimed = jobs_reclaim(
        jobs=ImageImport.objects.all(),
        timeout=TIMEOUT,
        max_attempts=MAX_ATTEMPTS,
        requeue=lambda held, job: pytest.fail("requeued"),
        fail=lambda held, job: pytest.fail("failed"),
        settle=lambda held, job: bool(held.update(status=ImageImport.Status.SUCCEEDED)),
    )
    assert (reclaimed.settled, reclaimed.failed, reclaimed.requeued) == ([job.pk], [], [])


@pytest.mark.django_db
def test_the_image_import_kind_gives_up_through_the_helper_with_its_message(settings):
    from annotate.services.image_imports.jobs import image_imports_recover

    job = _pending()
    _claim(job, "w1@host")
    ImageImport.objects.filter(pk=job.pk).update(attempts=settings.PICKWISE_IMPORT_MAX_ATTEMPTS)
    _go_silent(job, seconds=settings.PICKWISE_IMPORT_HEARTBEAT_TIMEOUT + 1)
    assert image_imports_recover() == {"requeued": 0, "failed": 1}
    job.refresh_from_db()
    assert job.error == DIED_TOO_OFTEN.format(attempts=settings.PICKWISE_IMPORT_MAX_ATTEMPTS)


def test_reclaim_without_max_attempts_takes_no_fail_and_the_other_way_round():
    with pytest.raises(ValueError):
        jobs_reclaim(jobs=None, timeout=1, max_attempts=None, requeue=None, fail=lambda *a: 1)
    with pytest.raises(ValueError):
        jobs_reclaim(jobs=None, timeout=1, max_attempts=1, requeue=None)


# Renamed settings ------------------------------------------------------------------------

NEW, OLD = "PICKWISE_THING_TIMEOUT", "THING_TIMEOUT"


@pytest.fixture
def env():
    import environ

    return environ.Env()


def test_a_setting_under_its_new_name_is_read_without_a_warning(env, monkeypatch, recwarn):
    monkeypatch.setenv(NEW, "7")
    monkeypatch.delenv(OLD, raising=False)
    assert renamed_int(env, new=NEW, old=OLD, default=1) == 7
    assert not [w for w in recwarn if issubclass(w.category, DeprecationWarning)]


def test_a_setting_under_its_old_name_is_still_read_with_a_deprecation_warning(env, monkeypatch):
    monkeypatch.delenv(NEW, raising=False)
    monkeypatch.setenv(OLD, "9")
    with pytest.warns(RenamedSettingWarning, match=f"{OLD} is renamed {NEW}"):
        assert renamed_int(env, new=NEW, old=OLD, default=1) == 9
    assert issubclass(RenamedSettingWarning, DeprecationWarning)


def test_with_both_names_set_the_new_one_wins_and_the_old_one_is_said_to_be_ignored(
    env, monkeypatch
):
    monkeypatch.setenv(NEW, "7")
    monkeypatch.setenv(OLD, "9")
    with pytest.warns(RenamedSettingWarning, match=f"{OLD} is ignored"):
        assert renamed_int(env, new=NEW, old=OLD, default=1) == 7


def test_with_neither_name_set_the_default_holds(env, monkeypatch, recwarn):
    monkeypatch.delenv(NEW, raising=False)
    monkeypatch.delenv(OLD, raising=False)
    assert renamed_int(env, new=NEW, old=OLD, default=1) == 1
    assert not [w for w in recwarn if issubclass(w.category, DeprecationWarning)]
