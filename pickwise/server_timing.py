"""Where a request's time went, in a Server-Timing header (PICKWISE_SERVER_TIMING, off by
default; bench/annotate_load.py turns it on to break its slowest requests down).

    Server-Timing: app;dur=12.1, cpu;dur=6.0, db;dur=4.2;desc="5", commit;dur=0.6,
                   connect;dur=0.0, gc;dur=0.0

- app: wall time inside Django, from the first middleware in to the response out;
- cpu: this thread's CPU time in that span (time.thread_time);
- db: time inside SQL statements (execute wrapper; network, server work and lock waits);
  desc is the number of statements;
- commit: time inside COMMIT, which the execute wrapper does not see (the WAL flush);
- connect: time opening a database connection (CONN_MAX_AGE ran out, or a new thread);
- gc: this process's garbage-collector pauses during the request (any thread's: a
  collection holds the GIL, so it stalls every thread of the process).

What is left, app - cpu - db - commit - connect, is time this thread was runnable but not running:
waiting for the GIL behind the process's other threads, or for a core. What a client
measures beyond `app` happened outside Django: gunicorn's queue, HTTP, the network.

Off by default because it costs a little on every request and tells a client how long
the server worked.
"""

import gc
import threading
import time

from django.conf import settings
from django.core.exceptions import MiddlewareNotUsed
from django.db import connection

_gc_lock = threading.Lock()
_gc_total = 0.0  # seconds of collections in this process so far
_gc_started: float | None = None


def _on_gc(phase: str, info: dict) -> None:
    global _gc_total, _gc_started
    # Called with the GIL held by the collecting thread, so no other thread runs meanwhile.
    if phase == "start":
        _gc_started = time.perf_counter()
    elif _gc_started is not None:
        with _gc_lock:
            _gc_total += time.perf_counter() - _gc_started
        _gc_started = None


class _Timings:
    def __init__(self) -> None:
        self.db = 0.0
        self.queries = 0
        self.commit = 0.0
        self.connect = 0.0

    def __call__(self, execute, sql, params, many, context):
        start = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            self.db += time.perf_counter() - start
            self.queries += 1


_current = threading.local()


def _timed(original, part: str):
    """`original` (a bound method of this thread's connection), adding its time to `part`."""

    def timed(*args, **kwargs):
        timings = getattr(_current, "timings", None)
        start = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            if timings is not None:
                setattr(timings, part, getattr(timings, part) + time.perf_counter() - start)

    timed.server_timing = True
    return timed


class ServerTimingMiddleware:
    def __init__(self, get_response):
        if not settings.PICKWISE_SERVER_TIMING:
            raise MiddlewareNotUsed
        self.get_response = get_response
        if _on_gc not in gc.callbacks:
            gc.callbacks.append(_on_gc)

    def __call__(self, request):
        # The connection object is this thread's own, so wrapping its methods here is safe.
        if not getattr(connection._commit, "server_timing", False):
            connection._commit = _timed(connection._commit, "commit")
            connection.connect = _timed(connection.connect, "connect")
        timings = _Timings()
        _current.timings = timings
        gc_before = _gc_total
        cpu_start = time.thread_time()
        start = time.perf_counter()
        try:
            with connection.execute_wrapper(timings):
                response = self.get_response(request)
        finally:
            _current.timings = None
        app = time.perf_counter() - start
        cpu = time.thread_time() - cpu_start
        response["Server-Timing"] = (
            f"app;dur={app * 1000:.2f}, cpu;dur={cpu * 1000:.2f}, "
            f'db;dur={timings.db * 1000:.2f};desc="{timings.queries}", '
            f"commit;dur={timings.commit * 1000:.2f}, connect;dur={timings.connect * 1000:.2f}, "
            f"gc;dur={(_gc_total - gc_before) * 1000:.2f}"
        )
        return response
