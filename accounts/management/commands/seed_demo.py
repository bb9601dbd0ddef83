"""Create the demo cast for `make run`: alice, bob, carol and an admin."""

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from accounts.models import User

DEMO_USERS = [
    ("alice", "Alice Liddell", "alice-demo-pass"),
    ("bob", "Bob Marley", "bob-demo-pass"),
    ("carol", "Carol Danvers", "carol-demo-pass"),
]
ADMIN = ("admin", "Admin", "admin-demo-pass")


class Command(BaseCommand):
    help = "Create (or reset) the demo users and print their logins."

    def handle(self, *args: object, **options: object) -> None:
        if not settings.DEBUG:
            # Known passwords and a superuser must never reach a real deployment.
            raise CommandError("seed_demo creates well-known logins; it runs only with DEBUG=1.")
        for username, display_name, password in [*DEMO_USERS, ADMIN]:
            user, _ = User.objects.get_or_create(username=username)
            user.display_name = display_name
            user.is_active = True
            if (username, display_name, password) == ADMIN:
                user.is_staff = user.is_superuser = True
            user.set_password(password)
            user.save()
        self.stdout.write("Demo logins (username / password):")
        for username, _, password in DEMO_USERS:
            self.stdout.write(f"  {username:<6} / {password}")
        self.stdout.write(f"  {ADMIN[0]:<6} / {ADMIN[2]}   (superuser: /admin/)")
