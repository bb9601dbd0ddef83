"""GET /healthz: 200 when the database and the channel layer answer, else 503."""

import asyncio
import logging

from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer
from django.db import connection
from django.http import HttpRequest, JsonResponse

logger = logging.getLogger(__name__)

CHECK_TIMEOUT = 3.0


def _check_database() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()


async def _check_channel_layer() -> None:
    # A round trip through the layer proves routing between chat servers works,
    # not merely that Redis accepts a TCP connection.
    await get_channel_layer().ping()


async def healthz(request: HttpRequest) -> JsonResponse:
    checks = {
        "database": sync_to_async(_check_database, thread_sensitive=False)(),
        "channel_layer": _check_channel_layer(),
    }
    names = list(checks)
    results = await asyncio.gather(
        *(asyncio.wait_for(check, CHECK_TIMEOUT) for check in checks.values()),
        return_exceptions=True,
    )
    failing = {}
    for name, result in zip(names, results, strict=True):
        if isinstance(result, BaseException):
            logger.warning("healthz: %s failed: %r", name, result)
            failing[name] = type(result).__name__
    body = {
        "status": "ok" if not failing else "unavailable",
        "database": connection.vendor,
        "channel_layer": "redis" if get_channel_layer().url else "in-process",
        "failing": failing,
    }
    return JsonResponse(body, status=503 if failing else 200)
