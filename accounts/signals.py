"""What accounts tells the other apps, which it does not import."""

from django.dispatch import Signal

# A user was deactivated; sent inside the deactivating transaction, with `user`.
user_deactivated = Signal()
