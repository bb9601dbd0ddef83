from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "accounts"

    def ready(self) -> None:
        from django.contrib.auth.signals import user_logged_in

        # Registers the OpenAPI extension describing bearer-token authentication.
        from accounts import schema  # noqa: F401
        from accounts.login_guard import on_logged_in

        user_logged_in.connect(on_logged_in, dispatch_uid="accounts.login_guard")
