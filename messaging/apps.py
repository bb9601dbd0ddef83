from django.apps import AppConfig


class MessagingConfig(AppConfig):
    name = "messaging"

    def ready(self) -> None:
        from accounts.signals import user_deactivated
        from messaging.services import on_user_deactivated

        user_deactivated.connect(on_user_deactivated, dispatch_uid="messaging.owner_hand_over")
