from typing import Any

from rest_framework import exceptions
from rest_framework.pagination import CursorPagination


class UserCursorPagination(CursorPagination):
    """Opaque cursors: no COUNT over the whole user table, stable while users sign up."""

    page_size = 20
    page_size_query_param = "limit"
    max_page_size = 100
    ordering = "username"

    def get_page_size(self, request: Any) -> int:
        # DRF silently falls back to the default on a bad `limit`; say so instead.
        raw = request.query_params.get(self.page_size_query_param)
        if raw is None:
            return self.page_size
        try:
            size = int(raw)
        except ValueError:
            size = 0
        if size < 1:
            raise exceptions.ValidationError({"limit": ["A whole number of at least 1."]})
        return min(size, self.max_page_size)

    def decode_cursor(self, request: Any) -> Any:
        # DRF answers a malformed cursor with 404; it is bad input, so 400.
        try:
            return super().decode_cursor(request)
        except exceptions.NotFound:
            raise exceptions.ValidationError({"cursor": ["Invalid cursor."]}) from None

    def get_schema_operation_parameters(self, view: Any) -> list[dict[str, Any]]:
        parameters = super().get_schema_operation_parameters(view)
        for parameter in parameters:
            if parameter["name"] == self.page_size_query_param:
                parameter["schema"]["minimum"] = 1
                parameter["description"] = (
                    f"Users per page: default {self.page_size}, at most "
                    f"{self.max_page_size} (larger values are capped)."
                )
            elif parameter["name"] == self.cursor_query_param:
                parameter["description"] = "The `next` or `previous` link's cursor."
        return parameters
