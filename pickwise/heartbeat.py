"""A heartbeat from a thread, for jobs whose own progress can stay silent for minutes.

A job's recovery sweep takes a running job whose heartbeat is older than its timeout to
have lost its process (the OOM killer sends SIGKILL: nothing in the job runs again). Beating
from a thread every PICKWISE_HEARTBEAT_SECONDS keeps that timeout short (a couple of
minutes) however long one step of the job takes: a slow job keeps beating, a dead one stops.
"""

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from django.conf import settings
from django.db import DatabaseError, connection
from django.db.models import QuerySet
from django.utils import timezone

logger = logging.getLogger(__name__)


@contextmanager
def heartbeat(held: QuerySet, *, field: str = "heartbeat_at") -> Iterator[None]:
    """While the block runs, set `field` to now on `held` (the job's row while this process
    holds it) every PICKWISE_HEARTBEAT_SECONDS. The beats stop when the update matches no
    row: the job was reclaimed, and the job's own next write finds that out."""
    every = settings.PICKWISE_HEARTBEAT_SECONDS
    stop = threading.Event()

    def beat() -> None:
        try:
            while not stop.wait(every):
                try:
                    if not held.update(**{field: timezone.now()}):
                        return
                except DatabaseError as error:  # e.g. SQLite busy while the job writes
                    logger.warning("heartbeat of %s missed: %s", held.model.__name__, error)
        finally:
            connection.close()  # this thread's own connection

    thread = threading.Thread(target=beat, name="heartbeat", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=1)
