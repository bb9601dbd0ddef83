"""The one domain error type.

Services raise ChatError subclasses with a stable `code`; the REST layer maps
them to an HTTP status with a JSON body, the WebSocket consumer to an `error`
frame. Clients branch on `code`, never on `detail` (which is for humans).
"""


class ChatError(Exception):
    code: str = "error"
    status: int = 400
    detail: str = "The request could not be processed."

    def __init__(self, detail: str | None = None, *, code: str | None = None) -> None:
        if detail is not None:
            self.detail = detail
        if code is not None:
            self.code = code
        super().__init__(self.detail)


class InvalidInput(ChatError):
    code = "invalid"
    status = 400
    detail = "Invalid input."


class NotFound(ChatError):
    # Also answered for things that exist but the caller may not see, so that
    # an outsider cannot learn whether a conversation exists.
    code = "not_found"
    status = 404
    detail = "Not found."


class PermissionDenied(ChatError):
    code = "forbidden"
    status = 403
    detail = "You are not allowed to do this."


class Conflict(ChatError):
    code = "conflict"
    status = 409
    detail = "The request conflicts with the current state."
