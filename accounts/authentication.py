"""API token authentication: knox tokens sent as `Authorization: Bearer <token>`.

Knox over JWT: a knox token is a row (only its hash is stored), so deleting the
row revokes one device at once, and knox refuses tokens of inactive users on
every request. A JWT stays valid until it expires unless every server checks a
blacklist, which is the row lookup again with more moving parts.
"""

from typing import Any

from knox.auth import TokenAuthentication
from rest_framework import exceptions


class BearerTokenAuthentication(TokenAuthentication):
    def authenticate_credentials(self, token: bytes) -> tuple[Any, Any]:
        # Knox decodes the header as UTF-8 and would fail with a 500 on other bytes
        # (a header is Latin-1 on the wire): such a token is simply invalid.
        try:
            token.decode("utf-8")
        except UnicodeDecodeError:
            raise exceptions.AuthenticationFailed("Invalid token.") from None
        return super().authenticate_credentials(token)
