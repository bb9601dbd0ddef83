from rest_framework import serializers

from accounts.models import User


class UserSerializer(serializers.ModelSerializer):
    """A user as anyone signed in may see them: never e-mail or staff flags."""

    class Meta:
        model = User
        fields = ["id", "username", "display_name", "avatar_url", "last_active_at"]
        read_only_fields = fields


class MeSerializer(serializers.ModelSerializer):
    class Meta:
        model = User
        fields = ["id", "username", "display_name", "avatar_url", "time_zone", "last_active_at"]
        read_only_fields = ["id", "username", "last_active_at"]


class RegisterInputSerializer(serializers.Serializer):
    username = serializers.RegexField(r"^[\w.@+-]{3,150}$", max_length=150)
    password = serializers.CharField(max_length=128, write_only=True)
    display_name = serializers.CharField(
        max_length=64, required=False, allow_blank=True, default=""
    )


class TokenInputSerializer(serializers.Serializer):
    username = serializers.CharField(max_length=150)
    password = serializers.CharField(max_length=128, write_only=True)


class TokenOutputSerializer(serializers.Serializer):
    access = serializers.CharField(help_text="Send as `Authorization: Bearer <access>`.")
    expiry = serializers.DateTimeField(allow_null=True)
    user = MeSerializer()
