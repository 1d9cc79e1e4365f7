"""DRF wiring: one exception handler turning every error into {"detail", "code"} JSON, and
the OpenAPI names a generated client reads (operations, components, the token scheme)."""

import re

from django.core.exceptions import PermissionDenied, RequestDataTooBig
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.openapi import AutoSchema as SpectacularAutoSchema
from drf_spectacular.utils import OpenApiResponse
from rest_framework import exceptions, serializers, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from pickwise.errors import ApplicationError


def _validation_detail(error: DjangoValidationError) -> tuple[str, dict]:
    if hasattr(error, "error_dict"):
        fields = {f: [m for e in error.error_dict[f] for m in e.messages] for f in error.error_dict}
        first = next(iter(fields.values()))[0]
        return first, {"fields": fields}
    return "; ".join(error.messages), {}


class ErrorSerializer(serializers.Serializer):
    detail = serializers.CharField()
    code = serializers.CharField()


# The error responses every API documents (extend_schema(responses={..., **ERRORS})).
ERRORS = {
    400: OpenApiResponse(ErrorSerializer, "Malformed input"),
    403: OpenApiResponse(ErrorSerializer, "Not allowed"),
    404: OpenApiResponse(ErrorSerializer, "Not found or not visible to you"),
}

REQUEST_TOO_LARGE = "The request body is larger than this endpoint accepts."


class AutoSchema(SpectacularAutoSchema):
    """Names operations and components after the API classes, so a generated client reads
    `assignment_next(...)` and `JudgmentSubmitRequest` rather than
    `campaigns_next_create(...)` and `JudgmentSubmitApiInputRequest`.

    Operations: `JudgmentSubmitApi` -> `judgment_submit`, `ExportDetailApi` -> `export_get`.
    A class serving several methods names each one with extend_schema(operation_id=...).
    Components: `CampaignDetailApi.OutputSerializer` -> `CampaignDetail`, its InputSerializer
    -> `CampaignDetailRequest` (drf-spectacular adds "Request" to request bodies).
    """

    def get_operation_id(self):
        name = type(self.view).__name__.removesuffix("Api")
        words = re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()
        words = re.sub(r"_detail$", "_get", words)
        methods = [
            m for m in self.view.http_method_names if m != "options" and hasattr(self.view, m)
        ]
        if len(methods) > 1:
            words += "_" + self.method.lower()  # a fallback; such classes name their methods
        return words

    def get_serializer_name(self, serializer, direction):
        outer, *inner = type(serializer).__qualname__.split(".")
        parts = [outer.removesuffix("Api"), *(p.removesuffix("Serializer") for p in inner)]
        return "".join(p for p in parts if p not in ("Input", "Output"))


class TokenAuthenticationScheme(OpenApiAuthenticationExtension):
    """Declares the API token as HTTP bearer: generators send `Authorization: Bearer <token>`
    by default, and a prefix given only in prose (DRF's `Token`) is one they cannot know."""

    target_class = "annotate.authentication.CachedTokenAuthentication"
    name = "tokenAuth"

    def get_security_definition(self, auto_schema):
        return {
            "type": "http",
            "scheme": "bearer",
            "description": (
                "The token from POST /api/auth/token/, sent as `Authorization: Bearer <token>`"
                " (`Authorization: Token <token>` works too)."
            ),
        }


def exception_handler(exc, context):
    if isinstance(exc, RequestDataTooBig):
        return Response(
            {"detail": REQUEST_TOO_LARGE, "code": "too_large"},
            status=status.HTTP_413_REQUEST_ENTITY_TOO_LARGE,
        )
    if isinstance(exc, ApplicationError):
        body = {"detail": exc.message, "code": exc.code, **exc.extra}
        return Response(body, status=exc.status)
    if isinstance(exc, DjangoValidationError):
        message, extra = _validation_detail(exc)
        return Response(
            {"detail": message, "code": "invalid", **extra}, status=status.HTTP_400_BAD_REQUEST
        )
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, PermissionDenied):
        exc = exceptions.PermissionDenied()

    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    if isinstance(exc, exceptions.ValidationError):
        fields = exc.detail if isinstance(exc.detail, dict) else {"non_field_errors": exc.detail}
        response.data = {"detail": _first_message(fields), "code": "invalid", "fields": fields}
    else:
        detail = response.data.get("detail", "") if isinstance(response.data, dict) else ""
        code = getattr(exc, "default_code", "error")
        if isinstance(getattr(exc, "detail", None), exceptions.ErrorDetail):
            code = exc.detail.code
        response.data = {"detail": str(detail), "code": code}
    return response


def _first_message(fields) -> str:
    if isinstance(fields, dict):
        for key, value in fields.items():
            message = _first_message(value)
            return message if key == "non_field_errors" else f"{key}: {message}"
    if isinstance(fields, list) and fields:
        return _first_message(fields[0])
    return str(fields)
