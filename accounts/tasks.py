from celery import shared_task
from django.utils import timezone
from knox.models import AuthToken


@shared_task(acks_late=True, ignore_result=True)
def purge_expired_tokens() -> int:
    """Delete API tokens past their expiry; knox only rejects them lazily."""
    deleted, _ = AuthToken.objects.filter(expiry__lt=timezone.now()).delete()
    return deleted
