"""Field rules shared by the model, the web forms and the REST serializers."""

import zoneinfo
from functools import lru_cache

from django.core.exceptions import ValidationError
from django.core.validators import URLValidator


@lru_cache(maxsize=1)
def time_zone_names() -> frozenset[str]:
    # Reads the system's tz database once per process: ~600 names.
    return frozenset(zoneinfo.available_timezones())


def validate_time_zone(value: str) -> None:
    if value not in time_zone_names():
        raise ValidationError(
            "%(value)s is not a known IANA time zone (e.g. Europe/Paris).",
            code="invalid_time_zone",
            params={"value": value},
        )


# An avatar is shown in an <img>: only web URLs, never ftp: or data:.
validate_avatar_url = URLValidator(schemes=["http", "https"])
