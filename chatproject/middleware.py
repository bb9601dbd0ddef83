"""Errors under /api/ are JSON whatever DEBUG says.

Django answers some errors itself, before or after any DRF view: an unknown
URL, a crash outside a view, a request body over DATA_UPLOAD_MAX_MEMORY_SIZE.
With DEBUG on it would answer them with its HTML debug pages (tracebacks,
URL lists); API clients get the one JSON error shape instead, and nothing
internal. Pages outside /api/ keep Django's behaviour.
"""

import logging
from collections.abc import Callable

from django.core.exceptions import RequestDataTooBig, SuspiciousOperation
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt

from chatproject.api_errors import error_body

logger = logging.getLogger(__name__)


class ApiErrorsMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if not request.path.startswith("/api/"):
            return None
        if isinstance(exception, RequestDataTooBig):
            return JsonResponse(
                error_body("payload_too_large", "The request body is too large."), status=413
            )
        if isinstance(exception, SuspiciousOperation):
            return JsonResponse(error_body("bad_request", "Bad request."), status=400)
        logger.exception("Unhandled error on %s", request.path, exc_info=exception)
        return JsonResponse(error_body("server_error", "Internal server error."), status=500)


@csrf_exempt  # nothing to protect, and a CSRF refusal would be an HTML page
def api_not_found(request: HttpRequest, rest: str = "") -> JsonResponse:
    """Every unknown path under /api/: JSON, and no slash-appending redirect
    (a redirected POST would lose its body)."""
    return JsonResponse(error_body("not_found", "Not found."), status=404)
