"""One JSON error shape for the whole REST API.

    {"code": "<stable_code>", "detail": "<human text>", "fields": {"name": ["..."]}}

`fields` appears only for validation errors. Unexpected exceptions become a
500 with code "server_error" and are logged, never shown to the client. The
same shape answers when Django itself (not DRF) answers a path under /api/.
"""

import logging
from typing import Any

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import RequestDataTooBig
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.views import defaults
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse
from rest_framework import exceptions, serializers, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from chatproject.errors import ChatError

logger = logging.getLogger(__name__)


def error_body(code: str, detail: str, fields: dict[str, Any] | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"code": code, "detail": detail}
    if fields:
        body["fields"] = fields
    return body


def _messages(detail: Any, where: str = "") -> list[str]:
    """All messages under one input field as flat strings; errors of nested
    items (a list's entries, an object's keys) are prefixed with their place."""
    if isinstance(detail, dict):
        return [m for key, value in detail.items() for m in _messages(value, f"{where}[{key}]")]
    if isinstance(detail, list):
        return [m for item in detail for m in _messages(item, where)]
    return [f"{where} {detail}" if where else str(detail)]


def _field_errors(detail: Any) -> dict[str, list[str]]:
    if isinstance(detail, dict):
        return {str(key): _messages(value) for key, value in detail.items()}
    return {"non_field_errors": _messages(detail)}


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response:
    if isinstance(exc, ChatError):
        response = Response(error_body(exc.code, exc.detail), status=exc.status)
        if exc.status == status.HTTP_401_UNAUTHORIZED:
            # Every 401 says how to authenticate (RFC 9110).
            response["WWW-Authenticate"] = "Bearer"
        return response
    if isinstance(exc, RequestDataTooBig):
        return Response(
            error_body("payload_too_large", "The request body is too large."),
            status=status.HTTP_413_REQUEST_ENTITY_TOO_LARGE,
        )
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied()

    response = drf_exception_handler(exc, context)
    if response is None:
        logger.exception("Unhandled error in %s", context.get("view"))
        return Response(
            error_body("server_error", "Internal server error."),
            status=status.HTTP_500_INTERNAL_SERVER_ERROR,
        )

    if isinstance(exc, exceptions.ValidationError):
        fields = _field_errors(exc.detail)
        first = next((messages for messages in fields.values() if messages), ["Invalid input."])
        response.data = error_body("invalid", first[0], fields)
    else:
        code = exc.get_codes() if isinstance(exc, exceptions.APIException) else "error"
        if not isinstance(code, str):
            code = "error"
        detail = exc.detail if isinstance(exc, exceptions.APIException) else str(exc)
        response.data = error_body(code, str(detail))
    return response


# --- The error shape in the OpenAPI schema ------------------------------------


class ErrorSerializer(serializers.Serializer):
    code = serializers.CharField(
        help_text="Stable machine-readable code, e.g. `invalid`, `not_authenticated`, "
        "`not_found`, `throttled`. Clients branch on it."
    )
    detail = serializers.CharField(help_text="Human-readable explanation; may change.")

    def get_fields(self) -> dict[str, serializers.Field]:
        # `fields` is also the name of Serializer's field map, so it cannot be
        # declared as a class attribute.
        fields = super().get_fields()
        fields["fields"] = serializers.DictField(
            child=serializers.ListField(child=serializers.CharField()),
            required=False,
            help_text="Validation errors only: the messages for each input field "
            "(`non_field_errors` for the request as a whole).",
        )
        return fields


_ERROR_DESCRIPTIONS = {
    400: "Invalid input (`code` is `invalid`, with `fields`) or a domain rule refused it.",
    401: "No valid credentials (`not_authenticated`, `authentication_failed`).",
    403: "Not allowed (`permission_denied`; for browser sessions also a missing CSRF token).",
    404: "Not found, or not visible to the caller (`not_found`).",
    409: "Conflicts with the current state.",
    429: "Too many requests (`throttled`); retry after `Retry-After` seconds.",
}

RETRY_AFTER = OpenApiParameter(
    "Retry-After",
    OpenApiTypes.INT,
    OpenApiParameter.HEADER,
    response=[429],
    description="Seconds to wait before retrying.",
)


def error_responses(*statuses: int) -> dict[int, OpenApiResponse]:
    """The documented error answers of an operation, all in the one error shape."""
    return {
        status: OpenApiResponse(ErrorSerializer, description=_ERROR_DESCRIPTIONS[status])
        for status in statuses
    }


# --- When Django, not DRF, answers under /api/ -----------------------------------
# An unknown URL or a crash outside a DRF view would otherwise get Django's HTML
# page; API clients get the same JSON shape as everywhere else.


def _is_api(request: HttpRequest) -> bool:
    return request.path.startswith("/api/")


def page_not_found(request: HttpRequest, exception: Exception) -> HttpResponse:
    if _is_api(request):
        return JsonResponse(error_body("not_found", "Not found."), status=404)
    return defaults.page_not_found(request, exception)


def server_error(request: HttpRequest) -> HttpResponse:
    if _is_api(request):
        return JsonResponse(error_body("server_error", "Internal server error."), status=500)
    return defaults.server_error(request)
