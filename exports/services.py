"""Creating and building export snapshots.

`export_create` records the request and enqueues the build on commit; `export_build` runs
it (in the Celery task, or synchronously from the command): claim the row, write every file
into a hidden work folder beside the final one, hash them into the manifest, make them
read-only and move the folder into place in one rename. A finished export never changes.

A build whose worker died is reclaimed by `exports_recover` (beat, and a restarting worker):
its hidden folder is removed and it is re-queued, or failed after PICKWISE_EXPORT_MAX_ATTEMPTS
(pickwise/jobs.py). The claim token makes every write of the old build conditional, so one
that was in fact alive stops instead of finishing over the new one.
"""

import logging
import os
import secrets
import shutil
import stat
import time
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.utils import timezone

from annotate.models import Campaign
from exports.combined import campaigns_check_combinable, combination_build, export_campaigns
from exports.context import BuildContext, FormatResult
from exports.models import Export
from exports.policy import policy_from_dict
from exports.scan import DataChanged
from exports.selectors import (
    campaign_raters,
    campaign_summary,
    export_next_version,
    judgment_count,
    judgment_count_under_policy,
    judgment_last_id,
)
from exports.splits import splits_from_dict
from exports.writers.images import JpegEncoder
from exports.writers.manifest import folder_files, manifest_write
from pickwise.enqueue import enqueue_on_commit
from pickwise.errors import ApplicationError, without_paths
from pickwise.heartbeat import heartbeat
from pickwise.jobs import RELEASED, job_claim, job_held, jobs_reclaim
from webhooks.events import export_announce

logger = logging.getLogger(__name__)

FORMAT_NAMES = ", ".join(Export.Format.values)
UNKNOWN_FORMAT = "Unknown export format {format!r}; choose one of: " + FORMAT_NAMES + "."
UNKNOWN_CRITERION = "Campaign {slug!r} has no criterion {criterion!r}; it has: {keys}."
BAD_SEED = "seed must be a whole number from 0 to 2**63 - 1."
EMPTY_BEFORE_START = (
    "Nothing to export: no judgment of campaign {slug!r} is left after the policy "
    "(rater states {states}, gold and repeats left out). Include more rater states, or wait "
    "for judgments."
)
FOLDER_NOT_EMPTY = "The output folder {folder} exists and is not empty; choose a new folder."
FOLDER_UNWRITABLE = "Cannot write exports under {folder}: {reason}. Choose a writable folder."
NOT_PENDING = "Export {id} is {status}; only a pending export can be built."
DATA_KEPT_CHANGING = "The judgments kept changing while the export was written; try again."
WORKER_LOST = (
    "The export's build stopped (no progress for {timeout} s, or its worker restarted) after "
    "{attempts} attempt(s); its partial files were removed. Request the export again."
)
TRAINING_FORMATS = (
    Export.Format.PICKAPIC,
    Export.Format.RANKED,
    Export.Format.IMAGE_PREFERENCE,
)
BUILD_ATTEMPTS = 3
PROGRESS_EVERY_SECONDS = 1.0


def _app_version() -> str:
    try:
        with (Path(settings.BASE_DIR) / "pyproject.toml").open("rb") as handle:
            return tomllib.load(handle)["project"]["version"]
    except (OSError, KeyError, tomllib.TOMLDecodeError):
        return "unknown"


def export_folder_for(*, export: Export) -> Path:
    return Path(settings.EXPORT_ROOT) / f"{export.pk}-v{export.version}"


@transaction.atomic
def export_create(
    *,
    requested_by: AbstractBaseUser | None,
    campaign: Campaign,
    format: str,
    criterion: str | None = None,
    seed: Any = None,
    policy: Any = None,
    splits: Any = None,
    include_images: bool = True,
    enqueue: bool = True,
    also: list[Campaign] | None = None,
) -> Export:
    """Record an export request as a new version and enqueue its build once committed.

    `also` lists more campaigns to combine with `campaign` into one dataset
    (exports.combined); the export is versioned and listed under `campaign`.
    """
    if format not in Export.Format.values:
        raise ApplicationError(UNKNOWN_FORMAT.format(format=format), code="unknown_format")
    keys = [c["key"] for c in campaign.criteria]
    criterion = criterion or ("overall" if "overall" in keys else keys[0])
    if criterion not in keys:
        raise ApplicationError(
            UNKNOWN_CRITERION.format(slug=campaign.slug, criterion=criterion, keys=", ".join(keys)),
            code="unknown_criterion",
        )
    campaigns = [campaign, *(also or [])]
    if len(campaigns) > 1:
        campaigns_check_combinable(campaigns=campaigns, criterion=criterion, format=format)
    if seed is None:
        seed = 0
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**63:
        raise ApplicationError(BAD_SEED, code="invalid")
    checked_policy = policy_from_dict(policy, training_format=format in TRAINING_FORMATS)
    checked_splits = splits_from_dict(splits)
    if format != Export.Format.JSONL and not any(
        judgment_count_under_policy(campaign=source, policy=checked_policy) for source in campaigns
    ):
        raise ApplicationError(
            EMPTY_BEFORE_START.format(slug=campaign.slug, states=", ".join(checked_policy.states)),
            code="empty",
        )
    # The campaign row lock serialises version numbers per campaign.
    Campaign.objects.select_for_update().filter(pk=campaign.pk).first()
    export = Export(
        campaign=campaign,
        requested_by=requested_by,
        version=export_next_version(campaign=campaign, format=format),
        format=format,
        criterion=criterion,
        policy=checked_policy.as_dict(),
        splits=checked_splits,
        seed=seed,
        include_images=include_images,
        sources=[c.pk for c in campaigns] if len(campaigns) > 1 else [],
    )
    export.full_clean()
    export.save()
    if enqueue:
        from exports.tasks import export_build_task

        enqueue_on_commit(export_build_task, export.pk)
    return export


def _writer(format: str) -> Callable[[BuildContext], FormatResult]:
    from exports.writers.image_preference import write_image_preference
    from exports.writers.jsonl import write_jsonl
    from exports.writers.pickapic import write_pickapic
    from exports.writers.ranked import write_ranked

    return {
        Export.Format.PICKAPIC: write_pickapic,
        Export.Format.RANKED: write_ranked,
        Export.Format.IMAGE_PREFERENCE: write_image_preference,
        Export.Format.JSONL: write_jsonl,
    }[format]


def _prepare_folder(final: Path) -> Path:
    """The hidden work folder beside `final`; refuses a used or unwritable destination."""
    if final.exists() and (not final.is_dir() or any(final.iterdir())):
        raise ApplicationError(FOLDER_NOT_EMPTY.format(folder=final), code="folder_not_empty")
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
        work = final.parent / f".{final.name}.building-{secrets.token_hex(4)}"
        work.mkdir()
    except OSError as error:
        raise ApplicationError(
            FOLDER_UNWRITABLE.format(folder=final.parent, reason=error.strerror or error),
            code="folder_unwritable",
        ) from None
    return work


def _make_read_only(folder: Path) -> None:
    for path in folder.rglob("*"):
        if path.is_file():
            path.chmod(stat.S_IRUSR | stat.S_IRGRP)


class ClaimLost(Exception):
    """The build was reclaimed (its worker was taken for dead): stop, leave the row alone."""


def _held(export: Export) -> Any:
    """The export's row while this build still holds it: every write of the build goes
    through it, so a reclaimed build's writes match nothing."""
    return job_held(job=export)


class _Progress:
    """Counts judgments read and writes the figure, with a heartbeat, to the row at most
    once a second; raises ClaimLost once the row is no longer this build's."""

    def __init__(self, *, export: Export, total: int, callback: Callable | None) -> None:
        self.export = export
        self.total = total
        self.done = 0
        self.callback = callback
        self._last = time.monotonic()
        self._write(progress_done=0, progress_total=total)

    def __call__(self, rows: int) -> None:
        self.done = min(self.total, self.done + rows)
        if self.callback is not None:
            self.callback(self.done, self.total)
        now = time.monotonic()
        if now - self._last >= PROGRESS_EVERY_SECONDS or self.done == self.total:
            self._last = now
            self._write(progress_done=self.done)

    def _write(self, **fields: int) -> None:
        if not _held(self.export).update(heartbeat_at=timezone.now(), **fields):
            raise ClaimLost


def export_build(
    *,
    export: Export,
    folder: Path | None = None,
    progress: Callable[[int, int], None] | None = None,
    worker: str = "",
) -> Export:
    """Build a pending export. Returns it finished, or failed with `error` saying why, or
    as the recovery left it when the build was reclaimed meanwhile.

    Claims the row with a conditional update, so two workers never build the same export;
    `worker` (the Celery hostname) lets a restarting worker reclaim what it held.
    """
    _token, claimed = job_claim(
        claimable=Export.objects.filter(pk=export.pk, status=Export.Status.PENDING),
        worker=worker,
        started_at=timezone.now(),
        work_folder="",
    )
    export.refresh_from_db()
    if not claimed:
        raise ApplicationError(
            NOT_PENDING.format(id=export.pk, status=export.status), code="not_pending", status=409
        )
    final = Path(folder) if folder is not None else export_folder_for(export=export)
    work = None
    try:
        work = _prepare_folder(final)
        if not _held(export).update(work_folder=str(work)):
            raise ClaimLost
        with heartbeat(_held(export)):
            manifest = _build_with_retries(export=export, work=work, progress=progress)
        _make_read_only(work)
        # Last sign of life before the rename: recovery leaves a fresh heartbeat alone, so
        # the folder never appears under a row that is being built again.
        if not _held(export).update(heartbeat_at=timezone.now()):
            raise ClaimLost
        if final.exists():
            final.rmdir()  # empty (checked above); rename cannot replace it on every system
        os.rename(work, final)
    except ClaimLost:
        if work is not None:
            shutil.rmtree(work, ignore_errors=True)
        logger.warning("export %s was reclaimed from this build; stopped", export.pk)
        export.refresh_from_db()
        return export
    except Exception as error:  # the row must say what went wrong, whatever it was
        if work is not None:
            shutil.rmtree(work, ignore_errors=True)
        message = error.message if isinstance(error, ApplicationError) else f"{error}"
        if not isinstance(error, ApplicationError):
            logger.exception("export %s failed", export.pk)
            message = f"{type(error).__name__}: {message}"
        else:
            logger.warning("export %s failed: %s", export.pk, message)
        # Researchers read the row: no server paths there (the log has them).
        message = without_paths(message)
        if _held(export).update(
            status=Export.Status.FAILED, error=message, finished_at=timezone.now(), **_RELEASED
        ):
            export.refresh_from_db()
            export_announce(export=export)
        export.refresh_from_db()
        return export
    if _held(export).update(
        status=Export.Status.FINISHED,
        folder=str(final.resolve()),
        manifest=manifest,
        finished_at=timezone.now(),
        **_RELEASED,
    ):
        export.refresh_from_db()
        export_announce(export=export)
    export.refresh_from_db()
    return export


# What a build leaves on the row when it ends or is reclaimed (attempts stay counted).
_RELEASED = {**RELEASED, "work_folder": ""}


def exports_recover(*, worker: str | None = None, resend_pending: bool = False) -> dict:
    """Reclaim running builds whose worker is gone (pickwise.jobs.jobs_reclaim): those with
    no heartbeat for PICKWISE_EXPORT_HEARTBEAT_TIMEOUT seconds, and those held by `worker`
    (which has just started, so builds nothing). Each loses its hidden folder and goes back
    to pending and to the queue, or fails with WORKER_LOST after PICKWISE_EXPORT_MAX_ATTEMPTS
    builds, or at once when no worker built it (the export_dataset command, whose folder
    only that command knows).

    Each is taken with a conditional update on its claim token, so a build that is in fact
    alive finds its row changed at its next write and stops. resend_pending also re-sends
    pending exports (a message the dead worker had read may be gone; a duplicate is
    harmless, builds claim the row conditionally).
    """
    timeout = settings.PICKWISE_EXPORT_HEARTBEAT_TIMEOUT

    def fail(held, export: Export) -> bool:
        taken = held.update(
            status=Export.Status.FAILED,
            error=WORKER_LOST.format(attempts=export.attempts, timeout=timeout),
            finished_at=timezone.now(),
            **_RELEASED,
        )
        if taken:
            _remove_work_folder(export)
            export_announce(export=Export.objects.get(pk=export.pk))
        return bool(taken)

    def requeue(held, export: Export) -> bool:
        taken = held.update(
            status=Export.Status.PENDING, progress_done=0, started_at=None, **_RELEASED
        )
        if taken:
            _remove_work_folder(export)
        return bool(taken)

    reclaimed = jobs_reclaim(
        jobs=Export.objects.all(),
        timeout=timeout,
        max_attempts=settings.PICKWISE_EXPORT_MAX_ATTEMPTS,
        worker=worker,
        requeue=requeue,
        fail=fail,
        # A build with no worker ran in the export_dataset command: it cannot be queued.
        settle=lambda held, export: None if export.worker else fail(held, export),
    )
    requeued, failed = reclaimed.requeued, len(reclaimed.failed) + len(reclaimed.settled)
    if resend_pending:
        pending = Export.objects.filter(status=Export.Status.PENDING).values_list("pk", flat=True)
        requeued = sorted(set(requeued) | set(pending))
    if requeued:
        from exports.tasks import export_build_task

        for export_id in requeued:
            # On commit: the worker must find the row pending when the message arrives.
            enqueue_on_commit(export_build_task, export_id)
    return {"requeued": len(requeued), "failed": failed}


def _remove_work_folder(export: Export) -> None:
    if export.work_folder:
        shutil.rmtree(export.work_folder, ignore_errors=True)


def _build_with_retries(
    *, export: Export, work: Path, progress: Callable[[int, int], None] | None
) -> dict:
    for _attempt in range(BUILD_ATTEMPTS):
        try:
            return _build_once(export=export, work=work, progress=progress)
        except DataChanged:
            for child in work.iterdir():
                shutil.rmtree(child) if child.is_dir() else child.unlink()
    raise ApplicationError(DATA_KEPT_CHANGING, code="data_changed", status=409)


def _build_once(*, export: Export, work: Path, progress: Callable[[int, int], None] | None) -> dict:
    # Here, not at the top: the web process loads this module and needs no pyarrow.
    import pyarrow as pa

    from exports.writers.card import card_write

    campaign = export.campaign
    policy = policy_from_dict(export.policy, training_format=export.format in TRAINING_FORMATS)
    campaigns = export_campaigns(export=export)
    last_id = max(judgment_last_id(campaign=c) for c in campaigns)
    considered = sum(judgment_count(campaign=c, last_id=last_id) for c in campaigns)
    combination = (
        combination_build(campaigns=campaigns, last_id=last_id) if len(campaigns) > 1 else None
    )
    passes = 1 if export.format == Export.Format.JSONL else 2
    ctx = BuildContext(
        campaign=campaign,
        criterion=export.criterion,
        policy=policy,
        seed=export.seed,
        split_settings=export.splits,
        folder=work,
        last_id=last_id,
        raters=combination.raters() if combination else campaign_raters(campaign=campaign),
        batch_rows=settings.EXPORT_BATCH_ROWS,
        shard_max_bytes=settings.EXPORT_SHARD_MAX_BYTES,
        encoder=JpegEncoder(
            quality=settings.EXPORT_JPEG_QUALITY,
            cache_bytes=settings.EXPORT_IMAGE_CACHE_BYTES,
            enabled=export.include_images,
        ),
        public_base_url=settings.PUBLIC_BASE_URL,
        progress=_Progress(export=export, total=considered * passes, callback=progress),
        combination=combination,
    )
    result = _writer(export.format)(ctx)
    tally = result.tally
    counts = {
        "judgments_considered": tally.considered,
        "judgments_included": tally.included,
        "excluded": dict(sorted(tally.excluded.items())),
        "rows": result.rows,
        **result.extra_counts,
        **({"combined": combination.counts()} if combination else {}),
    }
    summary = {
        "campaign": campaign.slug if not combination else [c.slug for c in campaigns],
        "format": export.format,
        "criterion": export.criterion,
        "policy": policy.as_dict(),
        "seed": export.seed,
        "counts": counts,
    }
    if result.configs:
        card_write(
            folder=work,
            result=result,
            title=f"Pickwise: {' + '.join(c.title for c in campaigns)}",
            format=export.format,
            summary=summary,
        )
    manifest = {
        "export": {
            "id": export.pk,
            "version": export.version,
            "format": export.format,
            "created_at": export.created_at.isoformat(),
            "requested_by": export.requested_by.get_username() if export.requested_by else None,
        },
        "app": {"name": "pickwise", "version": _app_version(), "pyarrow": pa.__version__},
        # Each campaign with its own QC policy; policy.qc_policy is the first one's.
        "campaigns": [campaign_summary(campaign=c) for c in campaigns],
        "criterion": export.criterion,
        "policy": {**policy.as_dict(), "qc_policy": campaign.qc_policy},
        "splits": export.splits,
        "seeds": {
            "seed": export.seed,
            "splits": "captions sorted, shuffled with random.Random(f'pickwise-splits:{seed}')",
            "image_order": "image 0 and 1 swap when splitmix64(seed, ranking_id) is odd",
        },
        "snapshot": {"last_judgment_id": last_id},
        "include_images": export.include_images,
        "images_encoded": ctx.encoder.encoded,
        "counts": counts,
        "configs": result.configs,
        "files": folder_files(work),
    }
    manifest_write(folder=work, manifest=manifest)
    return manifest
