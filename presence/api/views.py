from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from chatproject.api_errors import error_responses
from chatproject.converters import BIGINT_MAX
from chatproject.errors import InvalidInput
from presence.selectors import MAX_USERS_PER_QUERY, presence_for


class PresenceOut(serializers.Serializer):
    user_id = serializers.IntegerField()
    status = serializers.ChoiceField(choices=["online", "offline"])
    last_active_at = serializers.DateTimeField(allow_null=True)
    version = serializers.IntegerField(
        help_text="Of the user's last change: a `presence` frame with a higher one is newer."
    )


def _user_ids(raw: str) -> list[int]:
    try:
        # Repeats count once: asking twice about someone is not asking more.
        ids = list(dict.fromkeys(int(part) for part in raw.split(",") if part.strip()))
    except ValueError:
        raise InvalidInput("`user_ids` is a comma-separated list of ids.") from None
    if not ids or len(ids) > MAX_USERS_PER_QUERY or min(ids) < 1 or max(ids) > BIGINT_MAX:
        raise InvalidInput(f"Give 1 to {MAX_USERS_PER_QUERY} positive user ids.")
    return ids


class PresenceView(APIView):
    @extend_schema(
        parameters=[OpenApiParameter("user_ids", str, required=True, description="e.g. `3,7,12`")],
        responses={200: PresenceOut(many=True), **error_responses(400, 401, 404, 429)},
    )
    def get(self, request: Request) -> Response:
        ids = _user_ids(request.query_params.get("user_ids", ""))
        return Response(presence_for(viewer_id=request.user.pk, user_ids=ids))
