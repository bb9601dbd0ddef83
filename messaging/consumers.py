"""The chat socket. It only does networking; services decide everything."""

import json
import logging
from typing import Any

from channels.generic.websocket import AsyncWebsocketConsumer

from accounts.ws_auth import SUBPROTOCOL
from chatproject.realtime import user_group

logger = logging.getLogger(__name__)

CLOSE_UNAUTHENTICATED = 4401


class ChatConsumer(AsyncWebsocketConsumer):
    user_id: int
    token_key: str | None
    session_key: str | None

    async def connect(self) -> None:
        user = self.scope.get("user")
        if user is None or not user.is_authenticated or not user.is_active:
            await self.close(code=CLOSE_UNAUTHENTICATED)
            return
        self.user_id = user.pk
        token = self.scope.get("auth_token")
        self.token_key = token.token_key if token is not None else None
        session = self.scope.get("session") if token is None else None
        self.session_key = session.session_key if session is not None else None
        await self.channel_layer.group_add(user_group(self.user_id), self.channel_name)
        subprotocol = SUBPROTOCOL if SUBPROTOCOL in self.scope.get("subprotocols", []) else None
        await self.accept(subprotocol=subprotocol)

    async def disconnect(self, code: int) -> None:
        if hasattr(self, "user_id"):
            await self.channel_layer.group_discard(user_group(self.user_id), self.channel_name)

    async def send_json(self, content: dict[str, Any]) -> None:
        await self.send(text_data=json.dumps(content, separators=(",", ":")))

    async def send_error(self, code: str, detail: str, **extra: Any) -> None:
        await self.send_json({"type": "error", "code": code, "detail": detail, **extra})

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        if text_data is None:
            await self.send_error("binary_not_supported", "Send JSON text frames.")
            return
        try:
            frame = json.loads(text_data)
        except ValueError:
            await self.send_error("malformed_json", "The frame is not valid JSON.")
            return
        if not isinstance(frame, dict) or not isinstance(frame.get("type"), str):
            await self.send_error("invalid_frame", "A frame is a JSON object with a string `type`.")
            return
        await self.send_error("unknown_type", f"Unknown frame type {frame['type']!r}.")

    # --- events from the channel layer ---------------------------------

    async def auth_revoked(self, event: dict[str, Any]) -> None:
        # An event naming neither a token nor a session revokes every socket of the
        # user (deactivation, password change); otherwise only the one credential's.
        token_key, session_key = event.get("token_key"), event.get("session_key")
        everything = token_key is None and session_key is None
        if (
            everything
            or (token_key is not None and token_key == self.token_key)
            or (session_key is not None and session_key == self.session_key)
        ):
            await self.close(code=CLOSE_UNAUTHENTICATED)
