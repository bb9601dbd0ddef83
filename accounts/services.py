"""Account writes: registration, profile, passwords, tokens, sessions, devices.

Every way a credential dies (log-out, password change, deactivation, deletion)
also tells the user's open sockets, which checked their credential only at the
handshake: an `auth.revoked` event naming the token or the browser session,
or neither to close every socket of the user.
"""

from django.conf import settings
from django.contrib.auth import logout, password_validation
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import F
from django.http import HttpRequest
from django.utils import timezone
from knox.models import AuthToken

from accounts.models import User
from accounts.signals import user_deactivated
from chatproject.errors import ChatError, Conflict, InvalidInput
from chatproject.realtime import send_to_users_on_commit
from chatproject.text import clean_name
from notifications.models import Device

# A user's push registrations are capped: the least recently seen goes first.
# Apps re-register on start, so a live device is never the oldest for long.
MAX_DEVICES_PER_USER = 20


def _close_sockets(
    *, user_id: int, token_key: str | None = None, session_key: str | None = None
) -> None:
    # Neither key given: the consumer closes every socket of the user.
    send_to_users_on_commit(
        [user_id], {"type": "auth.revoked", "token_key": token_key, "session_key": session_key}
    )


class CredentialsChanged(ChatError):
    code = "invalid_credentials"
    status = 401
    detail = "Wrong username or password."


# --- users -------------------------------------------------------------------


def user_register(*, username: str, password: str, display_name: str = "") -> User:
    # The same normalisation as the web form (NFKC): full-width letters are letters.
    username = User.normalize_username(username.strip())
    if User.objects.filter(username__iexact=username).exists():
        raise Conflict("That username is taken.", code="username_taken")
    user = User(username=username, display_name=clean_name(display_name))
    try:
        password_validation.validate_password(password, user)
    except ValidationError as exc:
        raise InvalidInput(" ".join(exc.messages), code="weak_password") from None
    user.set_password(password)
    try:
        with transaction.atomic():
            user.save()
    except IntegrityError:
        # Two sign-ups raced for the same name; the unique index decided.
        raise Conflict("That username is taken.", code="username_taken") from None
    return user


def user_profile_update(
    *,
    user: User,
    display_name: str | None = None,
    avatar_url: str | None = None,
    time_zone: str | None = None,
) -> User:
    """Change the given profile fields (already validated); None leaves one as it is."""
    changes = {
        "display_name": clean_name(display_name) if display_name is not None else None,
        "avatar_url": avatar_url,
        "time_zone": time_zone,
    }
    fields = [name for name, value in changes.items() if value is not None]
    for name in fields:
        setattr(user, name, changes[name])
    if fields:
        user.save(update_fields=fields)
    return user


@transaction.atomic
def user_password_changed(*, user: User) -> None:
    """After a password change made elsewhere (Django's own forms): every API
    token goes and every socket closes, as with user_password_set."""
    AuthToken.objects.filter(user=user).delete()
    _close_sockets(user_id=user.pk)


@transaction.atomic
def user_password_set(*, user: User, password: str | None) -> None:
    """Set a new password (None: disable password log-in) and sign out everywhere.

    Every API token goes, and every socket closes. Other browser sessions die by
    themselves: Django checks a hash of the password on each request. The caller
    keeps its own web session with update_session_auth_hash if it wants to.
    """
    if password is None:
        user.set_unusable_password()
    else:
        user.set_password(password)
    user.save(update_fields=["password"])
    user_password_changed(user=user)


@transaction.atomic
def user_deactivate(*, user: User) -> None:
    # Knox and Django's session backend refuse inactive users on every request;
    # the tokens are deleted anyway so that a reactivation does not revive them.
    # The epoch bump signs out every browser session for good: a reactivation
    # must not bring them back.
    User.objects.filter(pk=user.pk).update(is_active=False, session_epoch=F("session_epoch") + 1)
    user.refresh_from_db(fields=["is_active", "session_epoch"])
    AuthToken.objects.filter(user=user).delete()
    # Also devices registered from a browser session (no token to cascade from):
    # a banned user's phone must not keep showing message text.
    Device.objects.filter(user=user).delete()
    # The groups they own get an owner who can still manage them.
    user_deactivated.send(sender=User, user=user)
    _close_sockets(user_id=user.pk)


@transaction.atomic
def user_delete(*, user: User) -> None:
    user_id = user.pk
    user.delete()
    _close_sockets(user_id=user_id)


# --- tokens and sessions -------------------------------------------------------


@transaction.atomic
def token_issue(*, user: User, password_hash: str | None = None) -> tuple[AuthToken, str]:
    """A new per-device token; each device logs in separately and revokes its own.

    `password_hash`: the hash the caller's password was checked against. The
    user row is locked, so a password change or deactivation running at the
    same time either committed first (then the log-in is refused here) or
    waits and then deletes this token with the others.
    """
    current = User.objects.select_for_update().only("password", "is_active").get(pk=user.pk)
    if not current.is_active or (password_hash is not None and current.password != password_hash):
        raise CredentialsChanged()
    return AuthToken.objects.create(user=user, expiry=settings.REST_KNOX["TOKEN_TTL"])


@transaction.atomic
def token_revoke(*, token: AuthToken) -> None:
    user_id, token_key = token.user_id, token.token_key
    token.delete()
    _close_sockets(user_id=user_id, token_key=token_key)


@transaction.atomic
def tokens_revoke_all(*, user: User) -> int:
    """Sign out every app of the user; browser sessions stay. How many were signed out."""
    keys = list(AuthToken.objects.filter(user=user).values_list("token_key", flat=True))
    AuthToken.objects.filter(user=user).delete()
    for token_key in keys:
        _close_sockets(user_id=user.pk, token_key=token_key)
    return len(keys)


@transaction.atomic
def password_change_with_token(
    *, user: User, current_password: str, new_password: str
) -> tuple[AuthToken, str]:
    """The API's password change: every token dies, the calling device gets a new one."""
    if not user.check_password(current_password):
        raise InvalidInput("The current password is wrong.", code="wrong_password")
    try:
        password_validation.validate_password(new_password, user)
    except ValidationError as exc:
        raise InvalidInput(" ".join(exc.messages), code="weak_password") from None
    user_password_set(user=user, password=new_password)
    return token_issue(user=user)


def session_logout(*, request: HttpRequest) -> None:
    """End the browser session and close the sockets it opened (only those)."""
    user = request.user
    session_key = request.session.session_key
    logout(request)
    if user.is_authenticated and session_key:
        _close_sockets(user_id=user.pk, session_key=session_key)


# --- push devices ----------------------------------------------------------------


@transaction.atomic
def device_register(
    *, user: User, platform: str, token: str, name: str = "", auth_token: AuthToken | None = None
) -> tuple[Device, bool]:
    """Register a push token for the user; (device, created).

    A push token names one app install, so registering it again moves it to the
    user who is signed in there now: the previous user must stop getting pushes
    on a phone they no longer use. Tied to the API token it was registered with,
    it is removed when that token is revoked (no pushes after log-out).
    """
    device, created = Device.objects.update_or_create(
        token=token,
        defaults={
            "user": user,
            "platform": platform,
            "name": name.strip(),
            "auth_token": auth_token,
            "last_seen_at": timezone.now(),
        },
    )
    stale = Device.objects.filter(user=user).order_by("-last_seen_at", "-pk")[MAX_DEVICES_PER_USER:]
    Device.objects.filter(pk__in=list(stale.values_list("pk", flat=True))).delete()
    return device, created


def device_delete(*, device: Device) -> None:
    device.delete()
