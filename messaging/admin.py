"""Moderation in the Django admin. Actions go through the services, so their
effects reach connected clients live, and each is written to the admin log."""

from django.contrib import admin, messages
from django.contrib.admin.models import CHANGE, LogEntry
from django.db.models import QuerySet
from django.http import HttpRequest

from chatproject.errors import ChatError
from messaging import services
from messaging.models import Conversation, Membership, Message


def _audit(request: HttpRequest, obj: object, text: str) -> None:
    LogEntry.objects.log_actions(
        user_id=request.user.pk,
        queryset=[obj],
        action_flag=CHANGE,
        change_message=text,
        single_object=True,
    )


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0
    fields = ["user", "role", "joined_at", "last_read_seq"]
    readonly_fields = fields
    can_delete = False
    show_change_link = True

    def has_add_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


@admin.register(Conversation)
class ConversationAdmin(admin.ModelAdmin):
    list_display = ["id", "kind", "title", "last_seq", "last_activity_at", "created_at"]
    list_filter = ["kind"]
    search_fields = ["title", "memberships__user__username"]
    readonly_fields = [
        "kind",
        "direct_key",
        "created_by",
        "created_at",
        "last_activity_at",
        "last_seq",
    ]
    fields = ["title", *readonly_fields]
    inlines = [MembershipInline]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        # View only: a form save writes every column, and a stale last_seq
        # written back would make every later send collide. Moderators act
        # through the actions, which go through the services.
        return False

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        # Deleting would take its messages with it, and the members' inbox
        # events name them (messaging.inbox): tombstone messages instead.
        return False


@admin.register(Membership)
class MembershipAdmin(admin.ModelAdmin):
    list_display = ["id", "conversation", "user", "role", "joined_at"]
    list_filter = ["role"]
    search_fields = ["user__username", "conversation__title"]
    raw_id_fields = ["conversation", "user"]
    readonly_fields = ["conversation", "user", "role", "joined_at", "last_read_seq"]
    actions = ["remove_members"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        # Removal must go through the action, which tells every member's devices.
        return False

    @admin.action(description="Remove the selected members from their conversations")
    def remove_members(self, request: HttpRequest, queryset: QuerySet[Membership]) -> None:
        removed = 0
        for membership in list(queryset.select_related("conversation")):
            try:
                services.member_moderate_remove(
                    conversation_id=membership.conversation_id, user_id=membership.user_id
                )
            except ChatError as error:
                self.message_user(request, f"{membership}: {error.detail}", messages.WARNING)
                continue
            _audit(request, membership.conversation, f"Removed user {membership.user_id}")
            removed += 1
        self.message_user(request, f"Removed {removed} member(s).", messages.SUCCESS)


@admin.register(Message)
class MessageAdmin(admin.ModelAdmin):
    list_display = ["id", "conversation", "seq", "sender", "short_text", "created_at", "deleted_at"]
    list_filter = [("deleted_at", admin.EmptyFieldListFilter)]
    search_fields = ["text", "sender__username"]
    raw_id_fields = ["conversation", "sender"]
    readonly_fields = [
        "conversation",
        "seq",
        "sender",
        "client_msg_id",
        "text",
        "created_at",
        "edited_at",
        "deleted_at",
    ]
    actions = ["tombstone_messages"]
    list_select_related = ["conversation", "sender"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        # A hard delete would leave a gap in the sequence; the action tombstones.
        return False

    @admin.display(description="text")
    def short_text(self, message: Message) -> str:
        return message.text[:80]

    @admin.action(description="Delete the selected messages (tombstone, shown live)")
    def tombstone_messages(self, request: HttpRequest, queryset: QuerySet[Message]) -> None:
        count = 0
        for message_id in queryset.values_list("pk", flat=True):
            message = services.message_moderate_delete(message_id=message_id)
            if message is not None:
                _audit(request, message, "Deleted by a moderator")
                count += 1
        self.message_user(request, f"Deleted {count} message(s).", messages.SUCCESS)
