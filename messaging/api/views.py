"""Messaging REST views: parse, call one service or selector, answer."""

from django.conf import settings
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.serializers import Serializer
from rest_framework.views import APIView

from accounts.throttles import ReportRateThrottle, UserRateThrottle
from chatproject.api_errors import error_responses
from messaging import chat_servers, reports, selectors, services, wire
from messaging.api import serializers as s
from messaging.models import Conversation


def conversation_body(request: Request, conversation_id: int) -> dict:
    """The conversation as the caller sees it: the answer of every call that changes one."""
    return selectors.conversation_for_user(user_id=request.user.pk, conversation_id=conversation_id)


def parsed(serializer: type[Serializer], data: object) -> dict:
    instance = serializer(data=data)
    instance.is_valid(raise_exception=True)
    return instance.validated_data


class ConversationListView(APIView):
    @extend_schema(
        parameters=[s.ListQuery],
        responses={200: s.ConversationOut(many=True), **error_responses(400, 401, 429)},
    )
    def get(self, request: Request) -> Response:
        query = parsed(s.ListQuery, request.query_params)
        return Response(selectors.conversations_for_user(user_id=request.user.pk, **query))

    @extend_schema(
        request=s.ConversationCreateIn,
        responses={
            201: s.ConversationOut,
            200: OpenApiResponse(s.ConversationOut, "The existing direct conversation"),
            **error_responses(400, 401, 409, 429),
        },
    )
    def post(self, request: Request) -> Response:
        data = parsed(s.ConversationCreateIn, request.data)
        if data["kind"] == Conversation.Kind.DIRECT:
            conversation, created = services.conversation_direct_get_or_create(
                user=request.user, other_user_id=data["user_id"]
            )
        else:
            conversation = services.conversation_group_create(
                owner=request.user, title=data["title"], member_ids=data.get("member_ids", [])
            )
            created = True
        body = conversation_body(request, conversation.pk)
        return Response(body, status=status.HTTP_201_CREATED if created else status.HTTP_200_OK)


class ConversationDetailView(APIView):
    @extend_schema(responses={200: s.ConversationOut, **error_responses(401, 404, 429)})
    def get(self, request: Request, conversation_id: int) -> Response:
        return Response(conversation_body(request, conversation_id))

    @extend_schema(
        request=s.ConversationUpdateIn,
        responses={200: s.ConversationOut, **error_responses(400, 401, 403, 404, 429)},
    )
    def patch(self, request: Request, conversation_id: int) -> Response:
        data = parsed(s.ConversationUpdateIn, request.data)
        services.conversation_rename(
            actor_id=request.user.pk, conversation_id=conversation_id, title=data["title"]
        )
        return Response(conversation_body(request, conversation_id))


class MembersView(APIView):
    @extend_schema(
        request=s.MembersAddIn,
        responses={200: s.ConversationOut, **error_responses(400, 401, 403, 404, 409, 429)},
    )
    def post(self, request: Request, conversation_id: int) -> Response:
        data = parsed(s.MembersAddIn, request.data)
        services.members_add(
            actor_id=request.user.pk, conversation_id=conversation_id, user_ids=data["user_ids"]
        )
        return Response(conversation_body(request, conversation_id))


class MemberView(APIView):
    @extend_schema(
        request=None,
        responses={204: None, **error_responses(400, 401, 403, 404, 429)},
        description="Remove a member (owner/admins), or leave (your own id).",
    )
    def delete(self, request: Request, conversation_id: int, user_id: int) -> Response:
        services.member_remove(
            actor_id=request.user.pk, conversation_id=conversation_id, user_id=user_id
        )
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(
        request=s.MemberRoleIn,
        responses={200: s.ConversationOut, **error_responses(400, 401, 403, 404, 429)},
    )
    def patch(self, request: Request, conversation_id: int, user_id: int) -> Response:
        data = parsed(s.MemberRoleIn, request.data)
        services.member_set_role(
            actor_id=request.user.pk,
            conversation_id=conversation_id,
            user_id=user_id,
            role=data["role"],
        )
        return Response(conversation_body(request, conversation_id))


class MessagesView(APIView):
    @extend_schema(
        parameters=[s.HistoryQuery],
        responses={200: s.HistoryOut, **error_responses(400, 401, 404, 429)},
    )
    def get(self, request: Request, conversation_id: int) -> Response:
        query = parsed(s.HistoryQuery, request.query_params)
        return Response(
            selectors.message_history(
                user_id=request.user.pk, conversation_id=conversation_id, **query
            )
        )

    @extend_schema(
        request=s.MessageSendIn,
        responses={
            201: s.SendOut,
            200: OpenApiResponse(s.SendOut, "A resend: the message stored the first time"),
            **error_responses(400, 401, 404, 429),
        },
    )
    def post(self, request: Request, conversation_id: int) -> Response:
        data = parsed(s.MessageSendIn, request.data)
        result = services.message_send(
            sender_id=request.user.pk, conversation_id=conversation_id, **data
        )
        body = {"duplicate": not result.created, "message": wire.message_dict(result.message)}
        return Response(body, status=status.HTTP_201_CREATED if result.created else 200)


class MessageView(APIView):
    @extend_schema(
        request=s.MessageEditIn,
        responses={200: s.MessageOut, **error_responses(400, 401, 403, 404, 429)},
    )
    def patch(self, request: Request, message_id: int) -> Response:
        data = parsed(s.MessageEditIn, request.data)
        message = services.message_edit(
            actor_id=request.user.pk, message_id=message_id, text=data["text"]
        )
        return Response(wire.message_dict(message))

    @extend_schema(
        request=None,
        responses={200: s.MessageOut, **error_responses(400, 401, 403, 404, 429)},
    )
    def delete(self, request: Request, message_id: int) -> Response:
        message = services.message_delete(actor_id=request.user.pk, message_id=message_id)
        return Response(wire.message_dict(message))


class ReportView(APIView):
    throttle_classes = [UserRateThrottle, ReportRateThrottle]

    def get_throttles(self) -> list:
        throttles = super().get_throttles()
        self.filed = next(t for t in throttles if isinstance(t, ReportRateThrottle))
        return throttles

    @extend_schema(
        operation_id="message_report",
        summary="Report someone else's message to the moderators",
        request=s.ReportIn,
        responses={
            201: OpenApiResponse(s.ReportOut, description="Reported."),
            200: OpenApiResponse(
                s.ReportOut, description="You had reported it already: that report, unchanged."
            ),
            **error_responses(400, 401, 404, 429),
        },
    )
    def post(self, request: Request, message_id: int) -> Response:
        data = parsed(s.ReportIn, request.data)
        report, created = reports.message_report(
            reporter_id=request.user.pk, message_id=message_id, **data
        )
        if created:
            self.filed.record()
        code = status.HTTP_201_CREATED if created else status.HTTP_200_OK
        return Response(s.ReportOut(report).data, status=code)


class ReadView(APIView):
    @extend_schema(
        request=s.ReadIn,
        responses={200: s.ReadOut, **error_responses(400, 401, 404, 429)},
    )
    def post(self, request: Request, conversation_id: int) -> Response:
        data = parsed(s.ReadIn, request.data)
        seq = services.conversation_mark_read(
            user_id=request.user.pk, conversation_id=conversation_id, seq=data["seq"]
        )
        return Response({"conversation_id": conversation_id, "last_read_seq": seq})


class SyncView(APIView):
    @extend_schema(
        parameters=[s.SyncQuery],
        responses={200: s.SyncOut, **error_responses(400, 401, 429)},
    )
    def get(self, request: Request) -> Response:
        query = parsed(s.SyncQuery, request.query_params)
        return Response(selectors.sync_page(user_id=request.user.pk, **query))


class ChatServerView(APIView):
    @extend_schema(responses={200: s.ChatServerOut, **error_responses(401, 429)})
    def get(self, request: Request) -> Response:
        url = chat_servers.pick() or settings.CHAT_PUBLIC_WS_URL
        if not url:
            scheme = "wss" if request.is_secure() else "ws"
            url = f"{scheme}://{request.get_host()}/ws/chat/"
        return Response({"url": url, "heartbeat_interval": settings.PRESENCE_HEARTBEAT_INTERVAL})
