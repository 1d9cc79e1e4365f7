"""Response headers and log hygiene that apply to every page.

The Content-Security-Policy allows scripts, styles and fonts from this origin only: no inline
script, no inline style attribute, no eval. Templates keep to it (JS in static files, CSS in the
stylesheet). Images may also come from https: hosts, since media can be served from S3.
"""

import logging

CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data: blob: https:",
        "font-src 'self' data:",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)


class ContentSecurityPolicyMiddleware:
    """Sets the policy on responses that do not bring their own."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        response.headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
        return response


class ForbiddenWithoutTraceback(logging.Filter):
    """Django logs a refused request (403) with the PermissionDenied traceback; a refusal is an
    expected answer, not a fault, so keep the one-line warning and drop the traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "status_code", None) == 403:
            record.exc_info = None
            record.exc_text = None
        return True
