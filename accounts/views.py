"""The browser's account pages: sign-up, log-in, log-out, profile, password."""

import json
from functools import lru_cache
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import login
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.contrib.auth.mixins import LoginRequiredMixin
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import redirect, render
from django.templatetags.static import static
from django.urls import reverse, reverse_lazy
from django.utils.safestring import mark_safe
from django.views.decorators.http import require_POST
from django.views.generic import FormView, UpdateView
from knox.models import AuthToken

from accounts import login_guard, services
from accounts.forms import ProfileForm, RevokingPasswordChangeForm, SignupForm
from accounts.models import User
from accounts.throttles import auth_attempt_wait

_SCRIPT_ESCAPES = {ord("<"): "\\u003C", ord(">"): "\\u003E", ord("&"): "\\u0026"}


@lru_cache(maxsize=1)
def _js_modules() -> tuple[str, ...]:
    """The web app's ES modules, as paths under static/ (e.g. "js/app.js")."""
    root = Path(settings.BASE_DIR) / "static"
    return tuple(sorted(p.relative_to(root).as_posix() for p in (root / "js").rglob("*.js")))


@login_required
def app(request: HttpRequest) -> HttpResponse:
    user = request.user
    boot = {
        "user": {
            "id": user.pk,
            "username": user.username,
            "display_name": user.display_name,
            "name": user.name,
        },
        "max_group_members": settings.CHAT_MAX_GROUP_MEMBERS,
        "max_message_chars": settings.CHAT_MAX_MESSAGE_CHARS,
    }
    # The modules import each other by relative path ("./api.js"). With hashed
    # file names in production (manifest storage) those imports would load the
    # unhashed copies; an import map sends each plain URL to its hashed one.
    import_map = {
        "imports": {f"{settings.STATIC_URL}{path}": static(path) for path in _js_modules()}
    }
    # Escaped like json_script: no "</script>" can end the element early.
    import_map_json = json.dumps(import_map).translate(_SCRIPT_ESCAPES)
    return render(request, "app.html", {"boot": boot, "import_map": mark_safe(import_map_json)})  # noqa: S308


def wait_in_words(seconds: int) -> str:
    """How long to wait, as a person says it: '40 seconds', 'about 5 minutes'."""
    if seconds < 60:
        return f"{seconds} second{'s' if seconds != 1 else ''}"
    minutes = round(seconds / 60)
    if minutes < 60:
        return f"about {minutes} minute{'s' if minutes != 1 else ''}"
    hours = round(seconds / 3600)
    return f"about {hours} hour{'s' if hours != 1 else ''}"


def _throttled_page(request: HttpRequest, wait: int, account: bool = False) -> HttpResponse:
    context = {"wait": wait_in_words(wait), "account": account}
    response = render(request, "registration/throttled.html", context, status=429)
    response["Retry-After"] = str(wait)
    return response


def refuse_by_address(request: HttpRequest) -> HttpResponse | None:
    """The 429 page when this address is past THROTTLE_AUTH, else None."""
    wait = auth_attempt_wait(request)
    return None if wait is None else _throttled_page(request, wait)


def refuse_login(request: HttpRequest) -> HttpResponse | None:
    """For log-in pages (ours and the admin's): the 429 page when this POST
    may not try, else None, having taken one of the account's tries
    (accounts.login_guard). The per-address counter is the REST log-in's, so
    a guesser gains nothing by switching between the page and the API."""
    if request.method != "POST":
        return None
    if refused := refuse_by_address(request):
        return refused
    username = request.POST.get("username")
    if username and (wait := login_guard.attempt(request, username)) is not None:
        return _throttled_page(request, wait, account=True)
    return None


class LoginView(auth_views.LoginView):
    redirect_authenticated_user = True

    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        return refuse_login(request) or super().post(request, *args, **kwargs)


class SignupView(FormView):
    template_name = "registration/signup.html"
    form_class = SignupForm
    success_url = reverse_lazy("app")

    def get(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if request.user.is_authenticated:
            return redirect("app")
        return super().get(request, *args, **kwargs)

    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        # The same per-address counter as log-ins: each sign-up is an attempt.
        return refuse_by_address(request) or super().post(request, *args, **kwargs)

    def form_valid(self, form: SignupForm) -> HttpResponse:
        user = form.save()
        login(self.request, user)
        messages.success(self.request, f"Welcome, {user.name}!")
        return super().form_valid(form)


@require_POST
def logout_view(request: HttpRequest) -> HttpResponse:
    # POST only: a link or an <img> on another site must not sign anyone out.
    services.session_logout(request=request)
    return redirect("login")


class ProfileView(LoginRequiredMixin, UpdateView):
    template_name = "accounts/profile.html"
    form_class = ProfileForm
    # Not "user": that would hide the signed-in user of the page header.
    context_object_name = "profile"
    success_url = reverse_lazy("profile")

    def get_object(self, queryset: Any = None) -> User:
        # A fresh copy: an invalid form must not alter request.user for the page.
        return User.objects.get(pk=self.request.user.pk)

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        context["app_sign_ins"] = AuthToken.objects.filter(user=self.request.user).count()
        return context

    def form_valid(self, form: ProfileForm) -> HttpResponse:
        form.save()
        messages.success(self.request, "Profile saved.")
        return HttpResponseRedirect(self.get_success_url())


class PasswordChangeView(auth_views.PasswordChangeView):
    # Django's view saves the form, then keeps this browser signed in with
    # update_session_auth_hash; the form's save signs out everything else.
    template_name = "accounts/password_change.html"
    form_class = RevokingPasswordChangeForm
    success_url = reverse_lazy("profile")

    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        # Checking the current password is a guess, as at log-in (someone
        # holding a stolen session cookie): the API's per-address limit.
        return refuse_by_address(request) or super().post(request, *args, **kwargs)

    def form_valid(self, form: RevokingPasswordChangeForm) -> HttpResponse:
        response = super().form_valid(form)
        messages.success(self.request, "Password changed. Your other sessions were signed out.")
        return response


@login_required
@require_POST
def sign_out_apps(request: HttpRequest) -> HttpResponse:
    count = services.tokens_revoke_all(user=request.user)
    messages.success(request, f"Signed out of {count} app{'' if count == 1 else 's'}.")
    return redirect(reverse("profile"))
