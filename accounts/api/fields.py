"""Serializer fields that take JSON as it is typed."""

from typing import Any

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers


class StrictCharField(serializers.CharField):
    """A string, and only a string: DRF would turn `0` or `1.5` into "0" and "1.5"."""

    default_error_messages = {"not_a_string": "Expected a string."}

    def to_internal_value(self, data: Any) -> str:
        if not isinstance(data, str):
            self.fail("not_a_string")
        return super().to_internal_value(data)


class StrictURLField(StrictCharField, serializers.URLField):
    """`validators` given replace DRF's own URL check (http, https and ftp),
    which would otherwise say "Enter a valid URL." a second time."""

    def __init__(self, **kwargs: Any) -> None:
        given = kwargs.pop("validators", None)
        super().__init__(**kwargs)
        if given is not None:
            self.validators = list(given)


@extend_schema_field({"type": "string", "format": "uri", "nullable": True})
class AvatarURLField(serializers.URLField):
    """Stored as "" when there is none; answered as null, which `format: uri` allows."""

    def to_representation(self, value: str) -> str | None:
        return value or None
