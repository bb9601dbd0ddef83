"""Celery tasks: take ids, call a service, own the retries.

One task per device: a slow or failing device cannot hold up the others, a
worker that dies mid-way re-sends at most to one device, and a retry never
repeats a push that already arrived."""

from celery import shared_task

from notifications.push import Outcome
from notifications.services import message_push_device, message_push_targets

RETRY_DELAYS = [5, 30, 120, 600, 1800]


class PushRetry(Exception):
    pass


@shared_task(ignore_result=True, acks_late=True)
def push_new_messages(message_ids: list[int]) -> int:
    """One task per stored batch of messages: a busy chat server publishes one
    task per batch, not one per message."""
    pushed = 0
    for message_id in message_ids:
        devices = message_push_targets(message_id=message_id)
        for device_id in devices:
            push_to_device.delay(message_id, device_id)
        pushed += len(devices)
    return pushed


@shared_task(ignore_result=True, acks_late=True)
def push_new_message(message_id: int) -> int:
    """The task's name before pushes were batched: tasks queued by an older
    release are still run. Remove once no such task can be waiting."""
    return push_new_messages([message_id])


@shared_task(bind=True, ignore_result=True, acks_late=True, max_retries=len(RETRY_DELAYS))
def push_to_device(self, message_id: int, device_id: int) -> bool:  # type: ignore[no-untyped-def]
    outcome = message_push_device(message_id=message_id, device_id=device_id)
    if outcome is Outcome.RETRY:
        delay = RETRY_DELAYS[min(self.request.retries, len(RETRY_DELAYS) - 1)]
        raise self.retry(exc=PushRetry(f"device {device_id}"), countdown=delay)
    return outcome is Outcome.SENT
