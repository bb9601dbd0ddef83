from django.contrib.auth import password_validation
from django.contrib.auth.validators import UnicodeUsernameValidator
from django.core.exceptions import ValidationError as DjangoValidationError
from rest_framework import serializers

from accounts.api.fields import AvatarURLField, StrictCharField, StrictURLField
from accounts.models import User
from accounts.validators import validate_avatar_url, validate_time_zone
from notifications.models import Device

# DRF trims strings by default; a password is taken exactly as typed.
_password = {"max_length": 128, "trim_whitespace": False, "write_only": True}


def _check_password_strength(password: str, user: User) -> None:
    try:
        password_validation.validate_password(password, user)
    except DjangoValidationError as exc:
        raise serializers.ValidationError(list(exc.messages)) from None


class UserSerializer(serializers.ModelSerializer):
    """A user as anyone signed in may see them: never e-mail or staff flags, and
    never "last seen", which only people sharing a conversation may learn
    (GET /api/v1/presence/)."""

    avatar_url = AvatarURLField(read_only=True, allow_null=True)

    class Meta:
        model = User
        fields = ["id", "username", "display_name", "avatar_url"]
        read_only_fields = fields


class MeSerializer(serializers.ModelSerializer):
    """The signed-in user's own profile."""

    avatar_url = AvatarURLField(read_only=True, allow_null=True)

    class Meta:
        model = User
        fields = ["id", "username", "display_name", "avatar_url", "time_zone", "last_active_at"]
        read_only_fields = fields


class MeUpdateInputSerializer(serializers.Serializer):
    display_name = StrictCharField(max_length=64, allow_blank=True, required=False)
    avatar_url = StrictURLField(
        max_length=500,
        allow_null=True,
        required=False,
        validators=[validate_avatar_url],
        help_text="An http(s) image URL; null to remove.",
    )
    time_zone = StrictCharField(
        max_length=64,
        required=False,
        validators=[validate_time_zone],
        help_text="An IANA time zone name, e.g. `Europe/Paris`.",
    )

    def validate_avatar_url(self, value: str | None) -> str:
        return value or ""  # stored as "" when there is none


class RegisterInputSerializer(serializers.Serializer):
    username = StrictCharField(
        max_length=150,
        validators=[UnicodeUsernameValidator()],
        help_text="Letters, digits and @/./+/-/_ only; unique regardless of case.",
    )
    password = StrictCharField(
        **_password, help_text="Checked against the password rules (length, common, ...)."
    )
    display_name = StrictCharField(max_length=64, required=False, allow_blank=True, default="")

    def validate(self, attrs: dict) -> dict:
        candidate = User(username=attrs["username"], display_name=attrs["display_name"])
        try:
            _check_password_strength(attrs["password"], candidate)
        except serializers.ValidationError as exc:
            raise serializers.ValidationError({"password": exc.detail}) from None
        return attrs


class TokenInputSerializer(serializers.Serializer):
    username = StrictCharField(max_length=150)
    password = StrictCharField(**_password)


class TokenOutputSerializer(serializers.Serializer):
    access = serializers.CharField(help_text="Send as `Authorization: Bearer <access>`.")
    expiry = serializers.DateTimeField(
        allow_null=True,
        help_text="When the token lapses if unused; each use extends it. Null: never.",
    )
    user = MeSerializer()


class PasswordChangeInputSerializer(serializers.Serializer):
    current_password = StrictCharField(**_password)
    new_password = StrictCharField(**_password)

    def validate_current_password(self, value: str) -> str:
        if not self.context["user"].check_password(value):
            raise serializers.ValidationError("The current password is wrong.")
        return value

    def validate_new_password(self, value: str) -> str:
        _check_password_strength(value, self.context["user"])
        return value


class UserSearchQuerySerializer(serializers.Serializer):
    search = StrictCharField(
        max_length=150,
        required=False,
        allow_blank=True,
        default="",
        help_text=(
            "Part of a username or display name, any case; one or two characters"
            " match the start of either. Empty: everyone."
        ),
    )


class DeviceSerializer(serializers.ModelSerializer):
    class Meta:
        model = Device
        fields = ["id", "platform", "token", "name", "created_at", "last_seen_at"]
        read_only_fields = fields


class DeviceRegisterInputSerializer(serializers.Serializer):
    platform = serializers.ChoiceField(choices=Device.Platform.choices)
    token = StrictCharField(max_length=512, help_text="The FCM registration token.")
    name = StrictCharField(
        max_length=100,
        required=False,
        allow_blank=True,
        default="",
        help_text="Shown to the user, e.g. `Pixel 8`.",
    )


class DeviceTokenInputSerializer(serializers.Serializer):
    token = StrictCharField(max_length=512, help_text="The FCM registration token.")
