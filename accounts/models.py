from django.contrib.auth.models import AbstractUser
from django.db import models

from accounts.validators import validate_avatar_url, validate_time_zone


class User(AbstractUser):
    display_name = models.CharField(max_length=64, blank=True)
    avatar_url = models.URLField(max_length=500, blank=True, validators=[validate_avatar_url])
    time_zone = models.CharField(max_length=64, default="UTC", validators=[validate_time_zone])
    # Persisted copy of presence's "last seen", written when a user goes offline.
    last_active_at = models.DateTimeField(null=True, blank=True)

    @property
    def name(self) -> str:
        return self.display_name or self.username
