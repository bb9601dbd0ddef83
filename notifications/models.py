from django.conf import settings
from django.db import models


class Device(models.Model):
    """An app install that can receive push notifications (an FCM registration token)."""

    class Platform(models.TextChoices):
        ANDROID = "android", "Android"
        IOS = "ios", "iOS"
        WEB = "web", "Web"

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="devices"
    )
    platform = models.CharField(max_length=16, choices=Platform.choices)
    # FCM tokens are ~160 characters today; Google documents no maximum.
    token = models.CharField(max_length=512, unique=True)
    name = models.CharField(max_length=100, blank=True)
    # The API token the device signed in with: revoking it (log-out, password change,
    # deactivation) removes the registration, so a signed-out phone gets no pushes.
    auth_token = models.ForeignKey(
        "knox.AuthToken", null=True, blank=True, on_delete=models.CASCADE, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    last_seen_at = models.DateTimeField()

    class Meta:
        indexes = [models.Index(fields=["user", "-last_seen_at"], name="device_user_seen")]

    def __str__(self) -> str:
        return f"{self.get_platform_display()} device of user {self.user_id}"
