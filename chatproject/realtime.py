"""The one way events leave the server for connected devices.

Every socket joins exactly one group, `user.<id>`; a service decides which
users receive an event and calls `send_to_users_on_commit`. Sending only after
the transaction commits means no device ever sees state that could still roll
back. The channel layer is at-most-once: anything that must not be lost is
also stored (the inbox) and recovered by cursor sync.
"""

import logging
from collections.abc import Iterable
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import transaction

logger = logging.getLogger(__name__)


def user_group(user_id: int) -> str:
    return f"user.{user_id}"


async def send_to_users(user_ids: Iterable[int], message: dict[str, Any]) -> None:
    layer = get_channel_layer()
    for user_id in user_ids:
        try:
            await layer.group_send(user_group(user_id), message)
        except Exception:
            # Delivery is best effort; the stored inbox is the source of truth.
            logger.exception("group_send to user %s failed", user_id)


def send_to_users_now(user_ids: Iterable[int], message: dict[str, Any]) -> None:
    async_to_sync(send_to_users)(list(user_ids), message)


def send_to_users_on_commit(user_ids: Iterable[int], message: dict[str, Any]) -> None:
    ids = list(user_ids)
    transaction.on_commit(lambda: send_to_users_now(ids, message))
