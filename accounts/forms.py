"""Web forms. They validate; saving goes through accounts.services."""

from django import forms
from django.contrib.auth.forms import AdminPasswordChangeForm, PasswordChangeForm, UserCreationForm

from accounts import services
from accounts.models import User
from accounts.validators import time_zone_names


class SignupForm(UserCreationForm):
    """Username, optional display name and a password checked by the password validators."""

    class Meta(UserCreationForm.Meta):
        model = User
        fields = ["username", "display_name"]
        help_texts = {"display_name": "Optional: the name others see."}

    def save(self, commit: bool = True) -> User:
        return services.user_register(
            username=self.cleaned_data["username"],
            password=self.cleaned_data["password1"],
            display_name=self.cleaned_data.get("display_name", ""),
        )


def _time_zone_choices() -> list[tuple[str, str]]:
    return [(name, name.replace("_", " ")) for name in sorted(time_zone_names())]


class ProfileForm(forms.ModelForm):
    avatar_url = forms.URLField(
        max_length=500,
        required=False,
        assume_scheme="https",
        label="Avatar URL",
        help_text="An http(s) link to a picture; empty for none.",
        widget=forms.URLInput(attrs={"placeholder": "https://"}),
    )
    time_zone = forms.TypedChoiceField(choices=_time_zone_choices, label="Time zone")

    class Meta:
        model = User
        fields = ["display_name", "avatar_url", "time_zone"]
        labels = {"display_name": "Display name"}
        help_texts = {"display_name": "The name others see; your username if empty."}

    def save(self, commit: bool = True) -> User:
        return services.user_profile_update(user=self.instance, **self.cleaned_data)


class RevokingPasswordChangeForm(PasswordChangeForm):
    """The user's own password change: every other session, app and socket is signed out."""

    def save(self, commit: bool = True) -> User:
        services.user_password_set(user=self.user, password=self.cleaned_data["new_password1"])
        return self.user


class RevokingAdminPasswordChangeForm(AdminPasswordChangeForm):
    """The admin's "change password" also signs the user out everywhere."""

    def save(self, commit: bool = True) -> User:
        usable = self.cleaned_data["set_usable_password"]
        password = self.cleaned_data["password1"] if usable else None
        services.user_password_set(user=self.user, password=password)
        return self.user
