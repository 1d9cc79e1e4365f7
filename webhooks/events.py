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
