"""Conversations, messages and the per-user inbox.

Ordering rests on two counters taken under row locks inside the writing
transaction: `Conversation.last_seq` numbers the messages of a conversation and
`Inbox.last_seq` numbers the events of a user. A lock held until commit makes
commit order equal sequence order, so "everything after N" never skips a row
that commits late (identity columns do not give that).
"""

from django.conf import settings
from django.db import models


class Conversation(models.Model):
    class Kind(models.TextChoices):
        DIRECT = "direct"
        GROUP = "group"

    kind = models.CharField(max_length=8, choices=Kind.choices)
    title = models.CharField(max_length=200, blank=True)
    # "<low user id>:<high user id>" for direct conversations: the unique
    # constraint makes "one conversation per pair" hold under concurrent creates.
    direct_key = models.CharField(max_length=64, unique=True, null=True, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    # Not indexed: every send updates it, and an indexed column would make that
    # update write a new entry into each of the table's indexes instead of a
    # heap-only (HOT) update. Lists sort a user's own conversations, reached
    # through their memberships (messaging.selectors.conversations_for_user).
    last_activity_at = models.DateTimeField(auto_now_add=True)
    last_seq = models.BigIntegerField(default=0)

    def __str__(self) -> str:
        return self.title or f"{self.kind} #{self.pk}"


class Membership(models.Model):
    class Role(models.TextChoices):
        OWNER = "owner"
        ADMIN = "admin"
        MEMBER = "member"

    conversation = models.ForeignKey(
        Conversation, on_delete=models.CASCADE, related_name="memberships"
    )
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships"
    )
    role = models.CharField(max_length=8, choices=Role.choices, default=Role.MEMBER)
    joined_at = models.DateTimeField(auto_now_add=True)
    last_read_seq = models.BigIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["conversation", "user"], name="one_membership"),
        ]
        indexes = [models.Index(fields=["user", "conversation"])]

    def __str__(self) -> str:
        return f"{self.user_id} in {self.conversation_id} ({self.role})"

    @property
    def can_manage(self) -> bool:
        return self.role in (self.Role.OWNER, self.Role.ADMIN)


class Message(models.Model):
    # No index of its own: `one_seq` and `idempotent_send` both start with it.
    conversation = models.ForeignKey(
        Conversation, on_delete=models.CASCADE, related_name="messages", db_index=False
    )
    seq = models.BigIntegerField()
    sender = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    client_msg_id = models.CharField(max_length=64)
    text = models.TextField()
    created_at = models.DateTimeField(auto_now_add=True)
    edited_at = models.DateTimeField(null=True, blank=True)
    deleted_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["conversation", "seq"], name="one_seq"),
            # A resend with the same client id finds the stored message.
            models.UniqueConstraint(
                fields=["conversation", "sender", "client_msg_id"], name="idempotent_send"
            ),
        ]

    def __str__(self) -> str:
        return f"#{self.seq} in {self.conversation_id}"


class Inbox(models.Model):
    """The per-user event counter (the book's message sync queue head)."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, primary_key=True, related_name="+"
    )
    last_seq = models.BigIntegerField(default=0)

    def __str__(self) -> str:
        return f"inbox of {self.user_id} at {self.last_seq}"


class InboxEvent(models.Model):
    """One entry of a user's inbox: what a device replays after its cursor."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+", db_index=False
    )
    seq = models.BigIntegerField()
    kind = models.CharField(max_length=32)
    payload = models.JSONField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["user", "seq"], name="one_inbox_seq")]

    def __str__(self) -> str:
        return f"{self.kind} #{self.seq} for {self.user_id}"


class Report(models.Model):
    """A member's report of someone else's message, for the moderators (the
    Django admin's queue of open reports)."""

    class Reason(models.TextChoices):
        SPAM = "spam", "Spam"
        ABUSE = "abuse", "Harassment or abuse"
        OTHER = "other", "Something else"

    class Status(models.TextChoices):
        OPEN = "open", "Open"
        ACTIONED = "actioned", "Message deleted"
        # The sender had deleted it before a moderator acted.
        WITHDRAWN = "withdrawn", "Deleted by its sender"
        DISMISSED = "dismissed", "Dismissed"

    # No index of its own: `one_report_per_reporter` starts with it.
    message = models.ForeignKey(
        Message, on_delete=models.CASCADE, related_name="reports", db_index=False
    )
    # A deleted reporter's reports stay: they are evidence against the sender.
    reporter = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    reason = models.CharField(max_length=8, choices=Reason.choices)
    note = models.TextField(blank=True)
    # The message's text when it was reported: the sender may edit or delete
    # it later, and the moderator must still see what was reported. Emptied
    # with the note some time after the report is closed
    # (`reports.reports_forget_closed`).
    text = models.TextField()
    created_at = models.DateTimeField(auto_now_add=True)
    status = models.CharField(max_length=9, choices=Status.choices, default=Status.OPEN)
    resolved_at = models.DateTimeField(null=True, blank=True)
    resolved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )

    class Meta:
        constraints = [
            # Reporting again answers with the first report: one person
            # cannot make a message look reported by many.
            models.UniqueConstraint(fields=["message", "reporter"], name="one_report_per_reporter")
        ]
        # The moderators' queue: open reports, oldest first.
        indexes = [models.Index(fields=["status", "created_at"], name="report_queue")]

    def __str__(self) -> str:
        return f"report #{self.pk} ({self.get_status_display()})"
