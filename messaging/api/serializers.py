"""Input validation and the documented output shapes of the messaging API.

Outputs are produced by messaging.wire (shared with the socket); the output
serializers here describe those shapes for the OpenAPI schema."""

import re

from rest_framework import serializers

from accounts.api.fields import StrictCharField
from chatproject.converters import BIGINT_MAX
from messaging.models import Conversation, Membership, Report
from messaging.reports import NOTE_MAX_CHARS

_INTEGER = re.compile(r"-?[0-9]+")


class StrictIntegerField(serializers.IntegerField):
    """An integer, as a JSON number or as plain digits in a query string. DRF's
    own field also takes "5.0", " 5" or true, which the schema's `integer` does not."""

    def to_internal_value(self, data: object) -> int:
        if isinstance(data, bool | float) or (
            isinstance(data, str) and not _INTEGER.fullmatch(data)
        ):
            self.fail("invalid")
        return super().to_internal_value(data)


def BigInt(**kwargs: object) -> serializers.IntegerField:
    """An id or sequence number: refused with a 400 beyond PostgreSQL's bigint."""
    kwargs.setdefault("min_value", 0)
    return StrictIntegerField(max_value=BIGINT_MAX, **kwargs)


class MessageOut(serializers.Serializer):
    id = serializers.IntegerField()
    conversation_id = serializers.IntegerField()
    seq = serializers.IntegerField()
    sender_id = serializers.IntegerField()
    text = serializers.CharField(allow_blank=True)
    client_msg_id = serializers.CharField()
    created_at = serializers.DateTimeField()
    edited_at = serializers.DateTimeField(allow_null=True)
    deleted = serializers.BooleanField()


class MemberOut(serializers.Serializer):
    user_id = serializers.IntegerField()
    username = serializers.CharField()
    display_name = serializers.CharField(allow_blank=True)
    avatar_url = serializers.URLField(allow_null=True, help_text="null when there is none")
    role = serializers.ChoiceField(choices=Membership.Role.choices)
    last_read_seq = serializers.IntegerField(
        allow_null=True, help_text="Direct conversations only (a read receipt); null in groups."
    )


class ConversationOut(serializers.Serializer):
    id = serializers.IntegerField()
    kind = serializers.ChoiceField(choices=Conversation.Kind.choices)
    title = serializers.CharField(allow_blank=True)
    created_at = serializers.DateTimeField()
    last_activity_at = serializers.DateTimeField()
    last_seq = serializers.IntegerField()
    members = MemberOut(many=True)
    last_message = MessageOut(allow_null=True)
    last_read_seq = serializers.IntegerField()
    unread_count = serializers.IntegerField()


class ConversationCreateIn(serializers.Serializer):
    kind = serializers.ChoiceField(choices=Conversation.Kind.choices)
    user_id = BigInt(required=False, help_text="direct: the other user")
    # Blank passes here: the service answers it with its own code, `invalid_title`.
    title = serializers.CharField(
        required=False, allow_blank=True, max_length=200, help_text="group: its title"
    )
    member_ids = serializers.ListField(
        child=BigInt(),
        required=False,
        max_length=1000,
        help_text="group: the other members (the creator is added as owner)",
    )

    def validate(self, data: dict) -> dict:
        if data["kind"] == Conversation.Kind.DIRECT and "user_id" not in data:
            raise serializers.ValidationError({"user_id": ["Required for a direct conversation."]})
        if data["kind"] == Conversation.Kind.GROUP and "title" not in data:
            raise serializers.ValidationError({"title": ["Required for a group."]})
        return data


class ConversationUpdateIn(serializers.Serializer):
    title = serializers.CharField(max_length=200, allow_blank=True)


class MembersAddIn(serializers.Serializer):
    user_ids = serializers.ListField(child=BigInt(), min_length=1, max_length=1000)


class MemberRoleIn(serializers.Serializer):
    role = serializers.ChoiceField(choices=[Membership.Role.ADMIN, Membership.Role.MEMBER])


class MessageSendIn(serializers.Serializer):
    client_msg_id = serializers.CharField(max_length=64)
    # Length and blankness are checked by the service, the same for REST and socket.
    text = serializers.CharField(allow_blank=True, trim_whitespace=False)


class MessageEditIn(serializers.Serializer):
    text = serializers.CharField(allow_blank=True, trim_whitespace=False)


class ReportIn(serializers.Serializer):
    reason = serializers.ChoiceField(choices=Report.Reason.choices)
    note = StrictCharField(
        required=False,
        allow_blank=True,
        max_length=NOTE_MAX_CHARS,
        help_text="Anything the moderators should know (optional).",
    )


class ReportOut(serializers.ModelSerializer):
    message_id = serializers.IntegerField()

    class Meta:
        model = Report
        fields = ["id", "message_id", "reason", "note", "status", "created_at"]


class ReadIn(serializers.Serializer):
    seq = BigInt()


class ReadOut(serializers.Serializer):
    conversation_id = serializers.IntegerField()
    last_read_seq = serializers.IntegerField()


class HistoryQuery(serializers.Serializer):
    before = BigInt(required=False)
    after = BigInt(required=False)
    limit = StrictIntegerField(required=False, min_value=1, max_value=200)


class HistoryOut(serializers.Serializer):
    messages = MessageOut(many=True)
    has_more = serializers.BooleanField()


class ListQuery(serializers.Serializer):
    limit = StrictIntegerField(required=False, min_value=1, max_value=200)
    offset = BigInt(required=False, default=0)


class SyncQuery(serializers.Serializer):
    cursor = BigInt()
    limit = StrictIntegerField(required=False, min_value=1, max_value=200)


class EventOut(serializers.Serializer):
    type = serializers.CharField(help_text="always `event`")
    cursor = serializers.IntegerField()
    kind = serializers.CharField(
        help_text="message.new, message.edited, message.deleted, read, member.added, "
        "member.removed, conversation.updated; further fields depend on the kind"
    )


class SyncOut(serializers.Serializer):
    events = EventOut(many=True)
    cursor = serializers.IntegerField()
    has_more = serializers.BooleanField()
    reset = serializers.BooleanField()


class SendOut(serializers.Serializer):
    duplicate = serializers.BooleanField()
    message = MessageOut()


class ChatServerOut(serializers.Serializer):
    url = serializers.CharField(
        help_text="WebSocket URL to open: the chat server with the fewest open sockets"
    )
    heartbeat_interval = serializers.FloatField()
