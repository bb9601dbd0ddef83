"""Another device of a user: the REST API over HTTP against the live server.

Setting the scene through the real API (not the ORM, not Django's test client)
also keeps the tests off this thread's event loop: Playwright's sync API keeps
one running here, on which Django's async_to_sync (used to deliver events after
commit) refuses to run."""

import json
import urllib.error
import urllib.request
import uuid
from typing import Any


class RestDevice:
    def __init__(self, base_url: str, token: str) -> None:
        self.base_url = base_url
        self.token = token

    def call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        request = urllib.request.Request(
            f"{self.base_url}/api/v1/{path}",
            method=method,
            data=json.dumps(body).encode() if body is not None else None,
            headers={
                "Authorization": f"Bearer {self.token}",
                "Content-Type": "application/json",
                "Accept": "application/json",
            },
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                raw = response.read()
        except urllib.error.HTTPError as error:
            raise AssertionError(f"{method} {path}: {error.code} {error.read()!r}") from None
        return json.loads(raw) if raw else None

    def direct(self, user_id: int) -> int:
        return self.call("POST", "conversations/", {"kind": "direct", "user_id": user_id})["id"]

    def group(self, title: str, member_ids: list[int]) -> int:
        body = {"kind": "group", "title": title, "member_ids": member_ids}
        return self.call("POST", "conversations/", body)["id"]

    def send(self, conversation_id: int, text: str) -> dict[str, Any]:
        body = {"client_msg_id": uuid.uuid4().hex, "text": text}
        return self.call("POST", f"conversations/{conversation_id}/messages/", body)["message"]
