from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "accounts"

    def ready(self) -> None:
        # Registers the OpenAPI extension describing bearer-token authentication.
        from accounts import schema  # noqa: F401
