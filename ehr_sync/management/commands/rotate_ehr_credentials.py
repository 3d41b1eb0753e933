"""Re-encrypt every EHR connection's credentials with the first key of EHR_CREDENTIALS_KEYS."""

from django.core.management.base import BaseCommand
from django.db import transaction

from ehr_sync.credentials import credentials_rotate
from ehr_sync.models import EhrConnection
from lumapay.tenant_rls import all_organizations


class Command(BaseCommand):
    help = "Re-encrypt every EHR connection's credentials with the first key in EHR_CREDENTIALS_KEYS."

    def handle(self, *args, **options):
        rotated = 0
        # An operator's command across every clinic (a reviewed cross-clinic step).
        with all_organizations(), transaction.atomic():
            for connection in EhrConnection.objects.select_for_update().exclude(credentials_encrypted="").order_by("id"):
                connection.credentials_encrypted = credentials_rotate(connection.credentials_encrypted)
                connection.save(update_fields=["credentials_encrypted", "updated_at"])
                rotated += 1
        self.stdout.write(f"Re-encrypted the credentials of {rotated} connection(s) with the first key.")
