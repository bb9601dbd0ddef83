from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "accounts"

    def ready(self) -> None:
        from django.contrib.auth.signals import user_login_failed

        # Registers the OpenAPI extension describing bearer-token authentication.
        from accounts import schema  # noqa: F401
        from accounts.login_guard import on_login_failed

        user_login_failed.connect(on_login_failed, dispatch_uid="accounts.login_guard")
