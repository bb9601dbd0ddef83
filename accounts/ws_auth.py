"""Who is on the other end of a WebSocket.

Browsers send an Origin header and authenticate with their session cookie; the
Origin must then be one of ours, or any page on the web could ride the cookie
(cross-site WebSocket hijacking). Native mobile clients send no Origin and must
present a token: `Authorization: Bearer <token>` on the handshake, or, for
clients that cannot set headers, the subprotocol `bearer.<token>` beside
`chat.v1`. Without Origin the cookie is never used. Tokens in query strings
are not accepted: they end up in access logs.
"""

from dataclasses import dataclass
from importlib import import_module
from typing import Any
from urllib.parse import urlparse

from channels.db import database_sync_to_async
from channels.security.websocket import OriginValidator, WebsocketDenier
from django.conf import settings
from django.contrib.auth.models import AnonymousUser
from django.db.models import Q
from django.utils import timezone
from django.utils.crypto import constant_time_compare
from rest_framework import exceptions

from accounts.authentication import BearerTokenAuthentication

SUBPROTOCOL = "chat.v1"
TOKEN_SUBPROTOCOL_PREFIX = "bearer."


def _header(scope: dict[str, Any], name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key == name:
            return value.decode("latin1")
    return None


def bearer_token(scope: dict[str, Any]) -> str | None:
    authorization = _header(scope, b"authorization")
    if authorization:
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() == "bearer" and token.strip():
            return token.strip()
    for protocol in scope.get("subprotocols", []):
        if protocol.startswith(TOKEN_SUBPROTOCOL_PREFIX):
            return protocol[len(TOKEN_SUBPROTOCOL_PREFIX) :]
    return None


def origin_allowed(origin: str, host: str | None) -> bool:
    """The page that opened the socket is ours: the same host *and port* as the
    socket (another app on another port of the host may not use our cookie), or
    an origin listed in CSRF_TRUSTED_ORIGINS; and the host is one we serve."""
    parsed = urlparse(origin)
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        return False
    if origin.rstrip("/") in settings.CSRF_TRUSTED_ORIGINS:
        return True
    if host is None or parsed.netloc.lower() != host.lower():
        return False
    validator = OriginValidator(None, settings.ALLOWED_HOSTS)
    return validator.valid_origin(parsed)


@database_sync_to_async
def user_for_token(token: str) -> tuple[Any, Any] | None:
    try:
        return BearerTokenAuthentication().authenticate_credentials(token.encode())
    except exceptions.AuthenticationFailed:
        return None


@dataclass(frozen=True, slots=True)
class SocketUser:
    """What a socket needs of its user (a model instance is ~2 KB)."""

    pk: int
    is_active: bool
    is_authenticated: bool = True


async def _socket_user(token: str) -> tuple[Any, str | None]:
    found = await user_for_token(token)
    if found is None:
        return AnonymousUser(), None
    user, auth_token = found
    return SocketUser(pk=user.pk, is_active=user.is_active), auth_token.token_key


class WebSocketAuthMiddleware:
    """Sets scope["user"] and scope["auth_token_key"] (the knox token's key,
    or None). A token client's user is a `SocketUser`, not a model instance:
    the scope lives as long as the socket.

    Only a browser (an Origin of ours, no token) goes through `browser`
    (Channels' cookie, session and auth middleware): token clients skip three
    wrappers, each holding a copy of the scope and a session object for as
    long as the socket lives (memory per socket is a goal, docs/benchmarks.md).
    """

    def __init__(self, inner: Any, browser: Any) -> None:
        self.inner = inner
        self.browser = browser

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> Any:
        origin = _header(scope, b"origin")
        if origin is not None and not origin_allowed(origin, _header(scope, b"host")):
            # Refuse the handshake itself: a page from elsewhere gets nothing.
            return await WebsocketDenier()(scope, receive, send)

        token = bearer_token(scope)
        scope = dict(scope, auth_token_key=None)
        if token is not None:
            # In a helper, so that no local of this frame (which lives as long
            # as the socket) holds on to the model instances.
            scope["user"], scope["auth_token_key"] = await _socket_user(token)
        elif origin is None:
            # No Origin: not a browser, so the cookie must not authenticate.
            scope["user"] = AnonymousUser()
        else:
            # A browser on our origin, authenticated by its session cookie.
            return await self.browser(scope, receive, send)
        return await self.inner(scope, receive, send)


def credentials_valid(
    *, user_id: int, token_key: str | None, session_key: str | None = None
) -> bool:
    """Checked again once the socket listens for revocations (a log-out or a
    deactivation between the handshake and joining the group is not missed) and
    now and then on heartbeats (a revocation event the channel layer dropped,
    a bare UPDATE of is_active, a token that expired, a browser session
    ended)."""
    from knox.models import AuthToken

    from accounts.models import User

    if not User.objects.filter(pk=user_id, is_active=True).exists():
        return False
    if session_key is not None and not session_valid(user_id=user_id, session_key=session_key):
        return False
    if token_key is None:
        return True
    # Expired tokens are refused by REST at once; a socket must not outlive them.
    return (
        AuthToken.objects.filter(token_key=token_key, user_id=user_id)
        .filter(Q(expiry__isnull=True) | Q(expiry__gt=timezone.now()))
        .exists()
    )


credentials_still_valid = database_sync_to_async(credentials_valid)


def session_valid(*, user_id: int, session_key: str) -> bool:
    """A browser socket's session still signs its user in: not logged out, not
    expired, its auth hash still the user's (a password change or a sign-out
    everywhere ends it). Django's check of each request (auth.get_user), on a
    fresh load of the session (the socket's copy is from its handshake), but
    writing nothing: get_user would cycle the key of a session signed with a
    fallback SECRET_KEY, and the browser would never learn the new one."""
    from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY, load_backend

    session = import_module(settings.SESSION_ENGINE).SessionStore(session_key)
    try:
        if str(session[SESSION_KEY]) != str(user_id):
            return False
        user = load_backend(session[BACKEND_SESSION_KEY]).get_user(user_id)
    except KeyError:  # logged out or expired: nothing loaded
        return False
    if user is None:
        return False
    stored = session.get(HASH_SESSION_KEY) or ""
    hashes = [user.get_session_auth_hash(), *user.get_session_auth_fallback_hash()]
    return any(constant_time_compare(stored, current) for current in hashes)
