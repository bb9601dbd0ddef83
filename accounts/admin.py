"""Moderators' view of users. Deactivation, password changes and deletion here
go through accounts.services, so they sign the user out at once, sockets included."""

from typing import Any

from django.contrib import admin, messages
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.db import models
from django.db.models import QuerySet
from django.http import HttpRequest
from knox.admin import AuthTokenAdmin as KnoxAuthTokenAdmin
from knox.models import AuthToken

from accounts import services
from accounts.forms import RevokingAdminPasswordChangeForm
from accounts.models import User


@admin.register(User)
class UserAdmin(DjangoUserAdmin):
    change_password_form = RevokingAdminPasswordChangeForm
    formfield_overrides = {models.URLField: {"assume_scheme": "https"}}
    list_display = ["username", "display_name", "is_active", "is_staff", "last_active_at"]
    search_fields = ["username", "display_name", "email"]
    fieldsets = [
        *DjangoUserAdmin.fieldsets,
        ("Profile", {"fields": ["display_name", "avatar_url", "time_zone", "last_active_at"]}),
    ]
    actions = ["deactivate_users"]

    @admin.action(description="Deactivate selected users (signs them out everywhere)")
    def deactivate_users(self, request: HttpRequest, queryset: QuerySet[User]) -> None:
        users = list(queryset.filter(is_active=True))
        for user in users:
            services.user_deactivate(user=user)
            # In the admin's history, like the moderation actions on messages.
            self.log_change(request, user, "Deactivated by a moderator")
        self.message_user(request, f"Deactivated {len(users)} user(s).", messages.SUCCESS)

    def save_model(self, request: HttpRequest, obj: User, form: Any, change: bool) -> None:
        deactivating = change and "is_active" in form.changed_data and not obj.is_active
        super().save_model(request, obj, form, change)
        if deactivating:
            services.user_deactivate(user=obj)

    def get_deleted_objects(self, objs: Any, request: HttpRequest) -> tuple[Any, Any, Any, Any]:
        # Someone who has chatted cannot be deleted: their messages stay in
        # others' history (Message.sender is PROTECT), and memberships leave
        # only through the moderation action, which tells every member. Say
        # so, instead of Django's "no permission to delete membership".
        deleted, counts, perms_needed, protected = super().get_deleted_objects(objs, request)
        if perms_needed or protected:
            reason = "their chats and messages, which stay: deactivate the account instead"
            return deleted, counts, set(), [reason]
        return deleted, counts, perms_needed, protected

    def delete_model(self, request: HttpRequest, obj: User) -> None:
        services.user_delete(user=obj)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[User]) -> None:
        for user in queryset:
            services.user_delete(user=user)


# Knox registers its own token admin; deleting a token there must also close
# the sockets it opened.
admin.site.unregister(AuthToken)


@admin.register(AuthToken)
class AuthTokenAdmin(KnoxAuthTokenAdmin):
    def delete_model(self, request: HttpRequest, obj: AuthToken) -> None:
        services.token_revoke(token=obj)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[AuthToken]) -> None:
        for token in queryset:
            services.token_revoke(token=token)
