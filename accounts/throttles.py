"""Rate limits, counted in the shared cache so that they hold across processes.

DRF binds `SimpleRateThrottle.THROTTLE_RATES` when the class is defined; these
read the rates from the settings on each request instead, so an operator's
value (and a test's override_settings) is the one in force.
"""

from typing import Any

from django.http import HttpRequest
from rest_framework.settings import api_settings
from rest_framework.throttling import SimpleRateThrottle


class _SettingsRate(SimpleRateThrottle):
    def get_rate(self) -> str | None:
        return api_settings.DEFAULT_THROTTLE_RATES.get(self.scope)


class UserRateThrottle(_SettingsRate):
    """The whole API, per signed-in user (per client address when anonymous)."""

    scope = "user"

    def get_cache_key(self, request: Any, view: Any) -> str:
        user = getattr(request, "user", None)
        ident = user.pk if user is not None and user.is_authenticated else self.get_ident(request)
        return self.cache_format % {"scope": self.scope, "ident": ident}


class ReportRateThrottle(UserRateThrottle):
    """Reports filed per user, on top of the API's own limit. Only a report
    filed counts (the view calls `record`): a refused or repeated one costs
    nothing, so a user who mistyped cannot lock themselves out for an hour."""

    scope = "report"

    def allow_request(self, request: Any, view: Any) -> bool:
        # SimpleRateThrottle's check, without counting this request yet.
        if self.rate is None:
            return True
        self.key = self.get_cache_key(request, view)
        self.history = self.cache.get(self.key, [])
        self.now = self.timer()
        while self.history and self.history[-1] <= self.now - self.duration:
            self.history.pop()
        return len(self.history) < self.num_requests

    def record(self) -> None:
        if self.rate is None:
            return
        self.history.insert(0, self.now)
        self.cache.set(self.key, self.history, self.duration)


class AuthRateThrottle(_SettingsRate):
    """Sign-up and log-in attempts per client address: slows password guessing."""

    scope = "auth"

    def get_cache_key(self, request: Any, view: Any) -> str:
        return self.cache_format % {"scope": self.scope, "ident": self.get_ident(request)}


def auth_attempt_wait(request: HttpRequest) -> int | None:
    """For the web forms: None when this attempt may proceed, else seconds to wait.

    The same counter as the REST endpoints, so a guesser gains nothing by
    switching between the log-in page and the API.
    """
    throttle = AuthRateThrottle()
    if throttle.allow_request(request, None):
        return None
    return max(1, round(throttle.wait() or 1))
