"""Print the code an authenticator app with the demo key shows now (`make dev`'s demo clinic):
the second step of signing in as the demo administrator or manager without a phone."""

from django.core.management.base import BaseCommand

from org_profile.demo import DEMO_TOTP_SECRET, demo_sign_in_code


class Command(BaseCommand):
    help = "Print the demo administrator's and manager's current sign-in code (development only)."

    def handle(self, *args, **options):
        self.stdout.write(f"{demo_sign_in_code()}  (from the demo key {DEMO_TOTP_SECRET}; a new code every 30 seconds)")
