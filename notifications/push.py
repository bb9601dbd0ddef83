"""Push providers: FCM through pyfcm, or a log line in the embedded default.

pyfcm's defaults are unsafe for a worker: on `Retry-After` it sleeps and
recurses without bound, and its default adapter retries urllib3's default
number of times before raising `requests.RetryError` (not an FCM error). We
send one bounded attempt and let Celery own the back-off.
"""

import enum
import logging
import threading
from dataclasses import dataclass
from typing import Protocol

import requests
from django.conf import settings
from pyfcm import FCMNotification
from pyfcm.errors import (
    AuthenticationError,
    FCMError,
    FCMNotRegisteredError,
    FCMSenderIdMismatchError,
    FCMServerError,
    InvalidDataError,
)
from requests.adapters import HTTPAdapter
from urllib3 import Retry

logger = logging.getLogger(__name__)

SEND_TIMEOUT = 10


class Outcome(enum.Enum):
    SENT = "sent"
    # The token will never work again: forget the device.
    TOKEN_INVALID = "token_invalid"
    # Worth trying again later (FCM overloaded, network, our credentials).
    RETRY = "retry"


@dataclass(frozen=True)
class Push:
    title: str
    body: str
    data: dict[str, str]


class Provider(Protocol):
    def send(self, token: str, push: Push) -> Outcome: ...


class LogProvider:
    """No FCM credentials: record what would have been sent."""

    def send(self, token: str, push: Push) -> Outcome:
        logger.info("push (not sent, FCM not configured) to %s…: %s", token[:12], push.title)
        return Outcome.SENT


class _BoundedFCM(FCMNotification):
    def __init__(self, endpoint: str, **kwargs: object) -> None:
        # The endpoint is a class attribute in pyfcm; an instance attribute lets
        # the tests point a worker at a local fake FCM without patching.
        self.FCM_END_POINT_BASE = f"{endpoint.rstrip('/')}/v1/projects"
        super().__init__(**kwargs)

    def send_request(self, payload=None, timeout=None):  # type: ignore[no-untyped-def]
        response = self.requests_session.post(self.fcm_end_point, data=payload, timeout=timeout)
        if self._is_access_token_expired(response):
            self.thread_local.token_expiry = 0
            response = self.requests_session.post(self.fcm_end_point, data=payload, timeout=timeout)
        return response


class FCMProvider:
    def __init__(self, credentials_file: str, project_id: str, endpoint: str) -> None:
        # Retry only failed connects (nothing was sent); a retried POST could
        # show a push twice. Celery retries everything else, per device.
        retries = Retry(total=1, connect=1, read=0, status=0, other=0, raise_on_status=False)
        self.client = _BoundedFCM(
            endpoint,
            service_account_file=credentials_file,
            project_id=project_id,
            adapter=HTTPAdapter(max_retries=retries),
        )

    def send(self, token: str, push: Push) -> Outcome:
        try:
            self.client.notify(
                fcm_token=token,
                notification_title=push.title,
                notification_body=push.body,
                data_payload=push.data,
                timeout=SEND_TIMEOUT,
            )
        except (FCMNotRegisteredError, FCMSenderIdMismatchError):
            return Outcome.TOKEN_INVALID
        except InvalidDataError as error:
            # pyfcm raises this both for a 400 about the token and for failing to
            # get an access token; only the first means the device is gone.
            if "registration token" in str(error).lower():
                return Outcome.TOKEN_INVALID
            logger.warning("FCM refused a push: %s", error)
            return Outcome.RETRY
        except (FCMServerError, AuthenticationError, FCMError, requests.RequestException) as error:
            logger.warning("FCM push failed, will retry: %r", error)
            return Outcome.RETRY
        return Outcome.SENT


_provider: Provider | None = None
_provider_key: tuple[str, str, str] | None = None
_lock = threading.Lock()


def get_provider() -> Provider:
    """One provider per configuration (it caches FCM's access token)."""
    global _provider, _provider_key
    key = (settings.FCM_CREDENTIALS_FILE, settings.FCM_PROJECT_ID, settings.FCM_ENDPOINT)
    with _lock:
        if _provider is None or key != _provider_key:
            _provider = FCMProvider(*key) if settings.FCM_CREDENTIALS_FILE else LogProvider()
            _provider_key = key
        return _provider
