"""The events other apps announce: one function per kind, so each payload is defined once."""

from webhooks.services import webhook_event_emit


def export_announce(*, export) -> None:
    """export.finished or export.failed, after the export's row says so."""
    finished = export.status == "finished"
    webhook_event_emit(
        event="export.finished" if finished else "export.failed",
        campaign=export.campaign,
        data={
            "export": export.pk,
            "format": export.format,
            "version": export.version,
            "campaigns": export.campaign_ids,
            "status": export.status,
            "error": export.error,
            "url": f"/api/exports/{export.pk}/",
        },
    )


def training_job_announce(*, job) -> None:
    """training_job.finished (done) or training_job.failed, after the job's row says so."""
    webhook_event_emit(
        event="training_job.finished" if job.status == "done" else "training_job.failed",
        campaign=job.export.campaign,
        data={
            "training_job": job.pk,
            "export": job.export_id,
            "method": job.method,
            "status": job.status,
            "error": job.error,
            "url": f"/api/training-jobs/{job.pk}/",
        },
    )


def rater_gate_announce(*, membership, from_state: str, gate_event) -> None:
    """rater.blocked or rater.unblocked; other gate moves are not announced. The rater is
    named by their pseudonymous key, as in exports."""
    if "blocked" not in (from_state, membership.gate_state):
        return
    blocked = membership.gate_state == "blocked"
    webhook_event_emit(
        event="rater.blocked" if blocked else "rater.unblocked",
        campaign=membership.campaign,
        data={
            "rater": membership.rater_key,
            "from": from_state,
            "to": membership.gate_state,
            "rule": gate_event.rule,
            "reason": gate_event.reason,
            "gate_event": gate_event.pk,
        },
    )


def generation_job_announce(*, job) -> None:
    """generation_job.finished (done) or generation_job.failed."""
    webhook_event_emit(
        event="generation_job.finished" if job.status == "done" else "generation_job.failed",
        campaign=job.campaign,
        data={
            "generation_job": job.pk,
            "status": job.status,
            "error": job.error,
            "comparisons_created": job.comparisons_created,
            "url": f"/api/generation-jobs/{job.pk}/",
        },
    )


def image_import_announce(*, job) -> None:
    """image_import.finished (succeeded) or image_import.failed."""
    succeeded = job.status == "succeeded"
    webhook_event_emit(
        event="image_import.finished" if succeeded else "image_import.failed",
        campaign=job.campaign,
        data={
            "image_import": job.pk,
            "status": job.status,
            "counts": job.counts,
            "error": job.error,
            "url": f"/api/image-imports/{job.pk}/",
        },
    )
