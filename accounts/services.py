"""Account writes: registration, tokens, deactivation."""

from django.conf import settings
from django.contrib.auth import password_validation
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from knox.models import AuthToken

from accounts.models import User
from chatproject.errors import Conflict, InvalidInput
from chatproject.realtime import send_to_users_on_commit


def user_register(*, username: str, password: str, display_name: str = "") -> User:
    username = username.strip()
    if User.objects.filter(username__iexact=username).exists():
        raise Conflict("That username is taken.", code="username_taken")
    user = User(username=username, display_name=display_name.strip())
    try:
        password_validation.validate_password(password, user)
    except ValidationError as exc:
        raise InvalidInput(" ".join(exc.messages), code="weak_password") from None
    user.set_password(password)
    try:
        with transaction.atomic():
            user.save()
    except IntegrityError:
        raise Conflict("That username is taken.", code="username_taken") from None
    return user


def token_issue(*, user: User) -> tuple[AuthToken, str]:
    """A new per-device token; each device logs in separately and revokes its own."""
    return AuthToken.objects.create(user=user, expiry=settings.REST_KNOX["TOKEN_TTL"])


def _close_sockets(*, user_id: int, token_key: str | None) -> None:
    # Open sockets check their token only at the handshake; tell them to close.
    send_to_users_on_commit([user_id], {"type": "auth.revoked", "token_key": token_key})


@transaction.atomic
def token_revoke(*, token: AuthToken) -> None:
    user_id, token_key = token.user_id, token.token_key
    token.delete()
    _close_sockets(user_id=user_id, token_key=token_key)


@transaction.atomic
def tokens_revoke_all(*, user: User) -> None:
    AuthToken.objects.filter(user=user).delete()
    _close_sockets(user_id=user.pk, token_key=None)


@transaction.atomic
def user_deactivate(*, user: User) -> None:
    user.is_active = False
    user.save(update_fields=["is_active"])
    tokens_revoke_all(user=user)
