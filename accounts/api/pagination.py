from typing import Any

from rest_framework import exceptions
from rest_framework.pagination import CursorPagination


class UserCursorPagination(CursorPagination):
    """Opaque cursors: no COUNT over the whole user table, stable while users sign up."""

    page_size = 20
    page_size_query_param = "limit"
    max_page_size = 100
    ordering = "username"

    def decode_cursor(self, request: Any) -> Any:
        # DRF answers a malformed cursor with 404; it is bad input, so 400.
        try:
            return super().decode_cursor(request)
        except exceptions.NotFound:
            raise exceptions.ValidationError({"cursor": ["Invalid cursor."]}) from None
