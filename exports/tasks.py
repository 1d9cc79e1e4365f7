"""Celery tasks for exports: thin wrappers around the services, on the default queue."""

from celery import shared_task

from exports.models import Export
from exports.services import export_build
from pickwise.errors import ApplicationError


@shared_task(name="exports.build", ignore_result=True)
def export_build_task(export_id: int) -> None:
    export = Export.objects.filter(pk=export_id, status=Export.Status.PENDING).first()
    if export is None:
        return  # built already, or being built by another worker
    try:
        export_build(export=export)
    except ApplicationError as error:
        if error.code != "not_pending":  # another worker claimed it in between: its job now
            raise
