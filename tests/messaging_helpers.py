"""Shared steps for the messaging tests."""

import uuid

from rest_framework.test import APIClient

from tests.conftest import Member
from tests.support.ws import Socket, open_socket


def api(member: Member | None = None) -> APIClient:
    client = APIClient()
    if member is not None:
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {member.token}")
    return client


def new_id() -> str:
    return uuid.uuid4().hex


def direct(a: Member, b: Member) -> int:
    response = api(a).post("/api/v1/conversations/", {"kind": "direct", "user_id": b.id})
    assert response.status_code in (200, 201), response.json()
    return response.json()["id"]


def group(owner: Member, *members: Member, title: str = "Team") -> int:
    response = api(owner).post(
        "/api/v1/conversations/",
        {"kind": "group", "title": title, "member_ids": [m.id for m in members]},
        format="json",
    )
    assert response.status_code == 201, response.json()
    return response.json()["id"]


def send(member: Member, conversation_id: int, text: str, client_msg_id: str | None = None):
    return api(member).post(
        f"/api/v1/conversations/{conversation_id}/messages/",
        {"client_msg_id": client_msg_id or new_id(), "text": text},
        format="json",
    )


def connect(server, member: Member, cursor: int | None = 0) -> tuple[Socket, dict]:
    """A socket of `member` on `server`, past `hello`: (socket, the `ready` frame)."""
    sock = open_socket(server.ws_url, token=member.token)
    sock.send({"type": "hello", "cursor": cursor})
    ready = sock.expect("ready")
    return sock, ready


def send_frame(conversation: int, text: str, client_msg_id: str | None = None) -> dict:
    return {
        "type": "send",
        "conversation_id": conversation,
        "client_msg_id": client_msg_id or new_id(),
        "text": text,
    }
