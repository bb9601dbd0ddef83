"""Celery tasks: take ids, call a service, own the retries."""

from celery import shared_task

from notifications.services import message_push_device, message_push_fanout

RETRY_DELAYS = [5, 30, 120, 600, 1800]


class PushRetry(Exception):
    pass


@shared_task(ignore_result=True, acks_late=True)
def push_new_message(message_id: int) -> int:
    result = message_push_fanout(message_id=message_id)
    # Retry failed devices one by one, so devices that got the push once never
    # get it twice.
    for device_id in result.to_retry:
        push_to_device.apply_async((message_id, device_id), countdown=RETRY_DELAYS[0])
    return result.sent


@shared_task(bind=True, ignore_result=True, acks_late=True, max_retries=len(RETRY_DELAYS))
def push_to_device(self, message_id: int, device_id: int) -> int:  # type: ignore[no-untyped-def]
    result = message_push_device(message_id=message_id, device_id=device_id)
    if result.to_retry:
        delay = RETRY_DELAYS[min(self.request.retries + 1, len(RETRY_DELAYS) - 1)]
        raise self.retry(exc=PushRetry(f"device {device_id}"), countdown=delay)
    return result.sent
