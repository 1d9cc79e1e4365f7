"""GET /healthz: is this web process able to serve? It checks the database and the broker.

200 {"status": "ok", "database": "ok", "broker": "ok"}, or 503 naming the part that failed
("failed"; the reason goes to the log, not to whoever asks). Answered by a middleware placed
first, so the container's health check on 127.0.0.1 passes neither ALLOWED_HOSTS (a 400) nor
the HTTPS redirect (a 301), either of which would read as healthy without checking anything.
"""

import logging

from django.conf import settings
from django.db import connection
from django.http import JsonResponse

logger = logging.getLogger(__name__)

PATH = "/healthz"


def database_check() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()


def broker_check() -> None:
    from pickwise.celery import app

    with app.connection_for_write() as conn:
        conn.ensure_connection(
            max_retries=1,
            interval_start=0,
            interval_step=0,
            timeout=settings.CELERY_BROKER_TIMEOUT,
        )


CHECKS = {"database": database_check, "broker": broker_check}


def health_report() -> tuple[bool, dict[str, str]]:
    report, healthy = {}, True
    for name, check in CHECKS.items():
        try:
            check()
            report[name] = "ok"
        except Exception:  # any failure means "not healthy"; the log has the reason
            logger.exception("health check: the %s is unavailable", name)
            report[name] = "failed"
            healthy = False
    return healthy, report


class HealthCheckMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if request.path != PATH:
            return self.get_response(request)
        if request.method not in ("GET", "HEAD"):
            return JsonResponse({"detail": "Use GET.", "code": "method_not_allowed"}, status=405)
        healthy, report = health_report()
        body = {"status": "ok" if healthy else "unavailable", **report}
        response = JsonResponse(body, status=200 if healthy else 503)
        response["Cache-Control"] = "no-store"
        return response
