"""Reports: a member flags someone else's message for the moderators.

A report keeps the message's text as it was when reported, because the
sender can edit or delete the message afterwards; the sender is told
nothing. Moderators work the queue in the Django admin
(messaging.admin.ReportAdmin): deleting a reported message goes through the
same tombstone as every other deletion and reaches every device live;
closing a report says what became of it. Some time after a report is closed
its copy of the words goes too (`reports_forget_closed`).
"""

from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone

from chatproject.errors import InvalidInput, NotFound
from messaging import services
from messaging.models import Membership, Message, Report

NOTE_MAX_CHARS = 500


@transaction.atomic
def message_report(
    *, reporter_id: int, message_id: int, reason: str, note: str = ""
) -> tuple[Report, bool]:
    """The caller's report of a message, and whether it is new. Reporting the
    same message again changes nothing and answers with the first report."""
    if reason not in Report.Reason.values:
        raise InvalidInput(
            f"`reason` is one of {', '.join(Report.Reason.values)}.", code="invalid_reason"
        )
    note = note.strip()
    if len(note) > NOTE_MAX_CHARS:
        raise InvalidInput(f"`note` is at most {NOTE_MAX_CHARS} characters.", code="note_too_long")
    # The message's row lock orders a report after a deletion that commits
    # first (the sender's or a moderator's): a report never arrives open for
    # a message already taken down, nor copies words being deleted.
    message = Message.objects.select_for_update().filter(pk=message_id).first()
    # Only a current member can see the message, so only they can report it;
    # others learn nothing, not even that it exists.
    if (
        message is None
        or not Membership.objects.filter(
            conversation_id=message.conversation_id, user_id=reporter_id
        ).exists()
    ):
        raise NotFound("No such message.", code="message_not_found")
    existing = Report.objects.filter(message=message, reporter_id=reporter_id).first()
    if existing is not None:
        return existing, False
    if message.sender_id == reporter_id:
        raise InvalidInput("You cannot report your own message.", code="own_message")
    if message.deleted_at is not None:
        raise InvalidInput("The message was deleted.", code="message_deleted")
    report = Report.objects.create(
        message=message, reporter_id=reporter_id, reason=reason, note=note, text=message.text
    )
    return report, True


def _close(reports: QuerySet[Report], *, moderator_id: int, status: str) -> list[int]:
    """Close the open ones among `reports`; their ids (the moderator's audit).
    Rows are locked in id order, so two moderators acting at once cannot
    deadlock."""
    ids = list(
        reports.filter(status=Report.Status.OPEN)
        .order_by("pk")
        .select_for_update()
        .values_list("pk", flat=True)
    )
    Report.objects.filter(pk__in=ids).update(
        status=status, resolved_at=timezone.now(), resolved_by_id=moderator_id
    )
    return ids


def reports_act(*, report_ids: list[int], moderator_id: int) -> tuple[list[int], list[int]]:
    """Delete the messages of the open reports among `report_ids`
    (tombstones, live on every device) and close every open report of them,
    other members' reports of the same messages too: `actioned`, or
    `withdrawn` where the sender had deleted the message already. Closed
    reports are left as they were decided. Returns the ids of the reports
    closed and of the messages deleted now."""
    open_reports = Report.objects.filter(pk__in=report_ids, status=Report.Status.OPEN)
    message_ids = sorted(set(open_reports.values_list("message_id", flat=True)))
    closed: list[int] = []
    deleted: list[int] = []
    for message_id in message_ids:
        # One transaction per message, like every other write: each locks its
        # own conversation first.
        with transaction.atomic():
            deleted_now = services.message_moderate_delete(message_id=message_id) is not None
            if deleted_now:
                deleted.append(message_id)
            closed += _close(
                Report.objects.filter(message_id=message_id),
                moderator_id=moderator_id,
                status=Report.Status.ACTIONED if deleted_now else Report.Status.WITHDRAWN,
            )
    return closed, deleted


@transaction.atomic
def reports_dismiss(*, report_ids: list[int], moderator_id: int) -> list[int]:
    """Close reports without acting on their messages; the ids of those that were open."""
    return _close(
        Report.objects.filter(pk__in=report_ids),
        moderator_id=moderator_id,
        status=Report.Status.DISMISSED,
    )


def reports_forget_closed() -> int:
    """Empty the copied words and notes of reports closed more than
    REPORT_RETENTION_DAYS ago: a decided report needs its outcome, not the
    words a sender may have deleted. Returns how many were emptied."""
    cutoff = timezone.now() - timedelta(days=settings.REPORT_RETENTION_DAYS)
    closed = Report.objects.exclude(status=Report.Status.OPEN).filter(resolved_at__lt=cutoff)
    return closed.exclude(text="", note="").update(text="", note="")
