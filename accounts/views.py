"""The browser's account pages: sign-up, log-in, log-out, profile, password."""

from typing import Any

from django.contrib import messages
from django.contrib.auth import login
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.contrib.auth.mixins import LoginRequiredMixin
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import redirect, render
from django.urls import reverse, reverse_lazy
from django.views.decorators.http import require_POST
from django.views.generic import FormView, UpdateView
from knox.models import AuthToken

from accounts import services
from accounts.forms import ProfileForm, RevokingPasswordChangeForm, SignupForm
from accounts.models import User
from accounts.throttles import auth_attempt_wait


@login_required
def app(request: HttpRequest) -> HttpResponse:
    return render(request, "app.html")


class _ThrottledPost:
    """Counts each POST against the same per-address limit as the REST log-in."""

    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        wait = auth_attempt_wait(request)
        if wait is not None:
            response = render(request, "registration/throttled.html", {"wait": wait}, status=429)
            response["Retry-After"] = str(wait)
            return response
        return super().post(request, *args, **kwargs)


class LoginView(_ThrottledPost, auth_views.LoginView):
    redirect_authenticated_user = True


class SignupView(_ThrottledPost, FormView):
    template_name = "registration/signup.html"
    form_class = SignupForm
    success_url = reverse_lazy("app")

    def get(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if request.user.is_authenticated:
            return redirect("app")
        return super().get(request, *args, **kwargs)

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
