"""The accounts REST API. Each view parses, calls one service or selector, serializes."""

from typing import Any

from django.contrib.auth import authenticate
from django.contrib.auth.signals import user_logged_in
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import generics, status
from rest_framework.exceptions import Throttled
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts import login_guard, selectors, services
from accounts.api.pagination import UserCursorPagination
from accounts.api.serializers import (
    DeviceRegisterInputSerializer,
    DeviceSerializer,
    DeviceTokenInputSerializer,
    MeSerializer,
    MeUpdateInputSerializer,
    PasswordChangeInputSerializer,
    RegisterInputSerializer,
    TokenInputSerializer,
    TokenOutputSerializer,
    UserSearchQuerySerializer,
    UserSerializer,
)
from accounts.authentication import BearerTokenAuthentication
from accounts.models import User
from accounts.throttles import AuthRateThrottle, UserRateThrottle
from chatproject.api_errors import RETRY_AFTER, error_responses
from chatproject.errors import ChatError, PermissionDenied


class InvalidCredentials(ChatError):
    code = "invalid_credentials"
    status = 401
    detail = "Wrong username or password."


def _token_response(user: Any, token: Any, raw: str, http_status: int) -> Response:
    data = {"access": raw, "expiry": token.expiry, "user": user}
    return Response(TokenOutputSerializer(data).data, status=http_status)


class _AuthEndpoint(APIView):
    """Sign-up and log-in: anonymous, and limited per client address."""

    permission_classes = [AllowAny]
    authentication_classes: list = []
    throttle_classes = [AuthRateThrottle]


class _TokenOnly(APIView):
    # Signing out or changing a password through the API concerns the calling
    # device's token; browsers do these on the web pages, with CSRF-protected forms.
    authentication_classes = [BearerTokenAuthentication]


class RegisterView(_AuthEndpoint):
    @extend_schema(
        operation_id="auth_register",
        summary="Create an account and sign this device in",
        request=RegisterInputSerializer,
        responses={201: TokenOutputSerializer, **error_responses(400, 409, 429)},
        parameters=[RETRY_AFTER],
        auth=[],
    )
    def post(self, request: Request) -> Response:
        data = RegisterInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        user = services.user_register(**data.validated_data)
        token, raw = services.token_issue(user=user)
        return _token_response(user, token, raw, status.HTTP_201_CREATED)


class TokenView(_AuthEndpoint):
    @extend_schema(
        operation_id="auth_token",
        summary="Sign this device in: a new API token",
        request=TokenInputSerializer,
        responses={200: TokenOutputSerializer, **error_responses(400, 401, 429)},
        parameters=[RETRY_AFTER],
        auth=[],
    )
    def post(self, request: Request) -> Response:
        data = TokenInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        # Refuses deactivated users too (ModelBackend), with the same answer.
        username = User.normalize_username(data.validated_data["username"])
        wait = login_guard.attempt(request, username)
        if wait is not None:
            raise Throttled(wait, detail="Too many failed log-ins to this account.")
        user = authenticate(request, username=username, password=data.validated_data["password"])
        if user is None:
            raise InvalidCredentials()
        # As a session log-in does: gives the try back, records last_login.
        user_logged_in.send(sender=type(user), request=request, user=user)
        token, raw = services.token_issue(user=user, password_hash=user.password)
        return _token_response(user, token, raw, status.HTTP_200_OK)


class LogoutView(_TokenOnly):
    @extend_schema(
        operation_id="auth_logout",
        summary="Revoke the calling token (its sockets close with 4401)",
        request=None,
        responses={204: None, **error_responses(401, 429)},
        parameters=[RETRY_AFTER],
    )
    def post(self, request: Request) -> Response:
        services.token_revoke(token=request.auth)
        return Response(status=status.HTTP_204_NO_CONTENT)


class LogoutAllView(_TokenOnly):
    @extend_schema(
        operation_id="auth_logout_all",
        summary="Revoke every API token of the user, this one included",
        request=None,
        responses={204: None, **error_responses(401, 429)},
        parameters=[RETRY_AFTER],
    )
    def post(self, request: Request) -> Response:
        services.tokens_revoke_all(user=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)


class PasswordView(_TokenOnly):
    # Guessing the current password with a stolen token is as slow as logging in.
    throttle_classes = [AuthRateThrottle, UserRateThrottle]

    @extend_schema(
        operation_id="auth_password_change",
        summary="Change the password: every token is revoked, this device gets a new one",
        request=PasswordChangeInputSerializer,
        responses={200: TokenOutputSerializer, **error_responses(400, 401, 429)},
        parameters=[RETRY_AFTER],
    )
    def post(self, request: Request) -> Response:
        data = PasswordChangeInputSerializer(data=request.data, context={"user": request.user})
        data.is_valid(raise_exception=True)
        token, raw = services.password_change_with_token(
            user=request.user,
            current_password=data.validated_data["current_password"],
            new_password=data.validated_data["new_password"],
        )
        return _token_response(request.user, token, raw, status.HTTP_200_OK)


class MeView(APIView):
    @extend_schema(
        operation_id="me_retrieve",
        summary="The signed-in user's profile",
        responses={200: MeSerializer, **error_responses(401, 429)},
        parameters=[RETRY_AFTER],
    )
    def get(self, request: Request) -> Response:
        return Response(MeSerializer(request.user).data)

    @extend_schema(
        operation_id="me_update",
        summary="Change display name, avatar URL or time zone",
        request=MeUpdateInputSerializer,
        responses={200: MeSerializer, **error_responses(400, 401, 403, 429)},
        parameters=[RETRY_AFTER],
    )
    def patch(self, request: Request) -> Response:
        data = MeUpdateInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        user = services.user_profile_update(user=request.user, **data.validated_data)
        return Response(MeSerializer(user).data)


class UserListView(generics.ListAPIView):
    serializer_class = UserSerializer
    pagination_class = UserCursorPagination

    @extend_schema(
        operation_id="users_list",
        summary="Find active users by username or display name",
        parameters=[UserSearchQuerySerializer, RETRY_AFTER],
        responses={200: UserSerializer(many=True), **error_responses(400, 401, 429)},
    )
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)

    def get_queryset(self) -> Any:
        query = UserSearchQuerySerializer(data=self.request.query_params)
        query.is_valid(raise_exception=True)
        return selectors.user_search(query=query.validated_data["search"])


class DeviceListView(APIView):
    @extend_schema(
        operation_id="devices_list",
        summary="The caller's registered push devices, most recently seen first",
        responses={200: DeviceSerializer(many=True), **error_responses(401, 429)},
        parameters=[RETRY_AFTER],
    )
    def get(self, request: Request) -> Response:
        devices = selectors.device_list_for_user(user=request.user)
        return Response(DeviceSerializer(devices, many=True).data)

    @extend_schema(
        operation_id="devices_register",
        summary="Register this device's push token (again: refreshes or moves it)",
        request=DeviceRegisterInputSerializer,
        responses={
            201: OpenApiResponse(DeviceSerializer, description="A new registration."),
            200: OpenApiResponse(
                DeviceSerializer,
                description="The token was known: now the caller's, with these details.",
            ),
            **error_responses(400, 401, 403, 429),
        },
        parameters=[RETRY_AFTER],
    )
    def post(self, request: Request) -> Response:
        if request.auth is None:
            # A registration lives as long as the API token it came with
            # (logging out deletes it); a browser session's has no such end.
            raise PermissionDenied(
                "Register push devices with an API token (auth/token/), not a session.",
                code="token_required",
            )
        data = DeviceRegisterInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        device, created = services.device_register(
            user=request.user, auth_token=request.auth, **data.validated_data
        )
        http_status = status.HTTP_201_CREATED if created else status.HTTP_200_OK
        return Response(DeviceSerializer(device).data, status=http_status)


class DeviceUnregisterView(APIView):
    # A POST, not a DELETE with a body: DELETE bodies are dropped by some clients
    # and proxies, and OpenAPI tools leave them out of the schema.
    @extend_schema(
        operation_id="devices_unregister",
        summary="Unregister a push token of the caller's",
        request=DeviceTokenInputSerializer,
        responses={204: None, **error_responses(400, 401, 403, 404, 429)},
        parameters=[RETRY_AFTER],
    )
    def post(self, request: Request) -> Response:
        data = DeviceTokenInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        device = selectors.access_device(user=request.user, token=data.validated_data["token"])
        services.device_delete(device=device)
        return Response(status=status.HTTP_204_NO_CONTENT)


class DeviceDetailView(APIView):
    @extend_schema(
        operation_id="devices_delete",
        summary="Unregister one of the caller's devices by id",
        responses={204: None, **error_responses(401, 403, 404, 429)},
        parameters=[RETRY_AFTER],
    )
    def delete(self, request: Request, device_id: int) -> Response:
        device = selectors.access_device(user=request.user, device_id=device_id)
        services.device_delete(device=device)
        return Response(status=status.HTTP_204_NO_CONTENT)
