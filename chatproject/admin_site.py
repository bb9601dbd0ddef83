"""The admin site: Django's, except that its log-in and password change are
limited like ours (per address, and log-ins per account), and a staff member
changing their own password there signs out their apps like everywhere else."""

from typing import Any

from django.contrib.admin import AdminSite
from django.contrib.admin.apps import AdminConfig
from django.http import HttpRequest, HttpResponse


class ChatAdminSite(AdminSite):
    site_header = "Chat moderation"
    site_title = "Chat moderation"

    def login(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        from accounts.views import refuse_login

        return refuse_login(request) or super().login(request, extra_context)

    def password_change(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        from accounts.services import user_password_changed
        from accounts.views import refuse_by_address

        # The old password is checked: a guess, limited as on our pages.
        if request.method == "POST" and (refused := refuse_by_address(request)):
            return refused
        response = super().password_change(request, extra_context)
        # Django's view redirects after a successful change (it keeps this
        # session itself with update_session_auth_hash).
        if request.method == "POST" and response.status_code == 302:
            user_password_changed(user=request.user)
        return response


class ChatAdminConfig(AdminConfig):
    default_site = "chatproject.admin_site.ChatAdminSite"
