"""Periodic annotation chores, run by Celery beat on the default queue."""

from celery import shared_task

from annotate.quality import tasks as quality_tasks  # noqa: F401  (autodiscovery finds only this module)
from annotate.services.assignments import assignments_expire_overdue


@shared_task(name="annotate.sweep_expired_assignments", ignore_result=True)
def sweep_expired_assignments_task() -> int:
    """Expire overdue leases in chunks until none are left; returns how many expired."""
    total = 0
    while expired := assignments_expire_overdue(limit=500):
        total += expired
    return total
