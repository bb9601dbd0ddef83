from django.contrib.auth.models import AbstractUser
from django.db import models
from django.db.models.functions import Lower

from accounts.validators import validate_avatar_url, validate_time_zone


class User(AbstractUser):
    display_name = models.CharField(max_length=64, blank=True)
    avatar_url = models.URLField(max_length=500, blank=True, validators=[validate_avatar_url])
    time_zone = models.CharField(max_length=64, default="UTC", validators=[validate_time_zone])
    # Persisted copy of presence's "last seen", written when a user goes offline.
    last_active_at = models.DateTimeField(null=True, blank=True)

    class Meta(AbstractUser.Meta):
        constraints = [
            # "Alice" and "alice" are one name: sign-ups racing on either spelling
            # cannot both succeed.
            models.UniqueConstraint(Lower("username"), name="username_unique_ignoring_case"),
        ]

    @property
    def name(self) -> str:
        return self.display_name or self.username
