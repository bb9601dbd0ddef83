from celery import shared_task

from messaging.reports import reports_forget_closed


@shared_task(acks_late=True, ignore_result=True)
def forget_closed_reports() -> int:
    """Empty the copied words of long-closed reports (REPORT_RETENTION_DAYS)."""
    return reports_forget_closed()
