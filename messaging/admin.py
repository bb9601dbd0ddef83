"""Moderation in the Django admin. Actions go through the services, so their
effects reach connected clients live, and each is written to the admin log."""

from collections.abc import Iterator
from typing import Any

from django.contrib import admin, messages
from django.contrib.admin.models import CHANGE, LogEntry
from django.db.models import Count, OuterRef, QuerySet, Subquery
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html

from chatproject.errors import ChatError
from messaging import reports, services
from messaging.models import Conversation, Membership, Message, Report


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

    @admin.action(
        description="Remove the selected members from their conversations", permissions=["change"]
    )
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

    # Like every action here, for those allowed to change, not only to view.
    @admin.action(
        description="Delete the selected messages (tombstone, shown live)", permissions=["change"]
    )
    def tombstone_messages(self, request: HttpRequest, queryset: QuerySet[Message]) -> None:
        count = 0
        for message_id in queryset.values_list("pk", flat=True):
            message = services.message_moderate_delete(message_id=message_id)
            if message is not None:
                _audit(request, message, "Deleted by a moderator")
                count += 1
        self.message_user(request, f"Deleted {count} message(s).", messages.SUCCESS)


class ReportStatusFilter(admin.SimpleListFilter):
    """Open reports by default: the queue is what is left to decide."""

    title = "status"
    parameter_name = "status"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list:
        return [*Report.Status.choices, ("all", "All")]

    def current(self) -> str:
        value = self.value()
        return value if value in (*Report.Status.values, "all") else Report.Status.OPEN

    def queryset(self, request: HttpRequest, queryset: QuerySet[Report]) -> QuerySet[Report]:
        value = self.current()
        return queryset if value == "all" else queryset.filter(status=value)

    def choices(self, changelist: Any) -> Iterator[dict[str, Any]]:
        current = self.current()
        for value, label in self.lookup_choices:
            yield {
                "selected": current == value,
                "query_string": changelist.get_query_string({self.parameter_name: value}),
                "display": label,
            }


@admin.register(Report)
class ReportAdmin(admin.ModelAdmin):
    """The moderators' queue: members' reports of messages, oldest first."""

    list_display = [
        "id",
        "created_at",
        "status",
        "reason",
        "reporter",
        "sender",
        "short_text",
        "message_now",
        "reports_of_message",
    ]
    list_filter = [ReportStatusFilter, "reason"]
    search_fields = ["text", "note", "reporter__username", "message__sender__username"]
    list_select_related = ["reporter", "message__sender", "message"]
    ordering = ["created_at"]
    readonly_fields = [
        "message_link",
        "conversation_link",
        "sender",
        "reporter",
        "reason",
        "note",
        "text",
        "message_now",
        "created_at",
        "status",
        "resolved_at",
        "resolved_by",
    ]
    fields = readonly_fields
    actions = ["delete_messages", "dismiss"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Report]:
        # How many members reported the same message: several is a signal.
        others = Report.objects.filter(message_id=OuterRef("message_id")).values("message_id")
        count = others.annotate(n=Count("pk")).values("n")
        return super().get_queryset(request).annotate(message_reports=Subquery(count))

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False  # closed through the actions, which record who and when

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_moderate_permission(self, request: HttpRequest) -> bool:
        # Viewing the queue is not deciding it: the actions need the change
        # permission, which the form itself never uses.
        return request.user.has_perm("messaging.change_report")

    def has_take_down_permission(self, request: HttpRequest) -> bool:
        return self.has_moderate_permission(request) and request.user.has_perm(
            "messaging.change_message"
        )

    @admin.display(description="sender")
    def sender(self, report: Report) -> str:
        # The sender's page is where a moderator deactivates them.
        user = report.message.sender
        url = reverse("admin:accounts_user_change", args=[user.pk])
        return format_html('<a href="{}">{}</a>', url, user.username)

    @admin.display(description="message")
    def message_link(self, report: Report) -> str:
        url = reverse("admin:messaging_message_change", args=[report.message_id])
        return format_html('<a href="{}">{}</a>', url, report.message)

    @admin.display(description="conversation")
    def conversation_link(self, report: Report) -> str:
        # The messages around it: context before deciding.
        url = reverse("admin:messaging_message_changelist")
        conversation_id = report.message.conversation_id
        return format_html(
            '<a href="{}?conversation__exact={}">its messages</a>', url, conversation_id
        )

    @admin.display(description="text when reported")
    def short_text(self, report: Report) -> str:
        return report.text[:80]

    @admin.display(description="message now")
    def message_now(self, report: Report) -> str:
        # What the sender did since: a moderator acts on the message as it is.
        message = report.message
        if message.deleted_at is not None:
            return "deleted"
        return "edited since" if message.text != report.text else "as reported"

    @admin.display(description="reports of the message")
    def reports_of_message(self, report: Report) -> int:
        return report.message_reports

    @admin.action(
        description="Delete the reported messages (tombstone, shown live) and close",
        permissions=["take_down"],
    )
    def delete_messages(self, request: HttpRequest, queryset: QuerySet[Report]) -> None:
        ids = list(queryset.values_list("pk", flat=True))
        closed, deleted = reports.reports_act(report_ids=ids, moderator_id=request.user.pk)
        for message in Message.objects.filter(pk__in=deleted):
            _audit(request, message, "Deleted by a moderator (reported)")
        for report in Report.objects.filter(pk__in=closed):
            _audit(request, report, f"Closed: {report.get_status_display()}")
        self.message_user(
            request,
            f"Deleted {len(deleted)} message(s) and closed {len(closed)} report(s).",
            messages.SUCCESS if closed else messages.WARNING,
        )

    @admin.action(
        description="Dismiss the selected reports (the messages stay)", permissions=["moderate"]
    )
    def dismiss(self, request: HttpRequest, queryset: QuerySet[Report]) -> None:
        ids = list(queryset.values_list("pk", flat=True))
        closed = reports.reports_dismiss(report_ids=ids, moderator_id=request.user.pk)
        for report in Report.objects.filter(pk__in=closed):
            _audit(request, report, "Dismissed")
        level = messages.SUCCESS if closed else messages.WARNING
        self.message_user(request, f"Dismissed {len(closed)} report(s).", level)
