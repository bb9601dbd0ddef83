from django.contrib.auth.models import AbstractUser
from django.db import models
from django.db.models.functions import Lower
from django.utils.crypto import salted_hmac

from accounts.validators import validate_avatar_url, validate_time_zone


class User(AbstractUser):
    display_name = models.CharField(max_length=64, blank=True)
    avatar_url = models.URLField(max_length=500, blank=True, validators=[validate_avatar_url])
    time_zone = models.CharField(max_length=64, default="UTC", validators=[validate_time_zone])
    # Persisted copy of presence's "last seen", written when a user goes offline.
    last_active_at = models.DateTimeField(null=True, blank=True)
    # Part of every browser session's hash: bumping it signs out every session
    # (deactivation), which a later reactivation does not undo.
    session_epoch = models.PositiveIntegerField(default=0, editable=False)

    class Meta(AbstractUser.Meta):
        constraints = [
            # "Alice" and "alice" are one name: sign-ups racing on either spelling
            # cannot both succeed.
            models.UniqueConstraint(Lower("username"), name="username_unique_ignoring_case"),
        ]

    def _get_session_auth_hash(self, secret: str | None = None) -> str:
        # Django's hash covers the password only (so a password change signs out
        # other sessions); ours covers the session epoch too.
        return salted_hmac(
            "accounts.User.session_auth_hash",
            f"{self.password}:{self.session_epoch}",
            secret=secret,
            algorithm="sha256",
        ).hexdigest()

    @property
    def name(self) -> str:
        return self.display_name or self.username
