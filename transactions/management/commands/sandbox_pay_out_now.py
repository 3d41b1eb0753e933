"""Pay a Sandbox clinic out now, to see a payment reach a payout without waiting for it to settle:

    manage.py sandbox_pay_out_now                 # every clinic on the Sandbox
    manage.py sandbox_pay_out_now --organization demo-clinic

Everything the clinic has at the Sandbox (settled or not) goes out at once in an instant payout,
made, sent and paid now; its events reach LumaPay through the webhook as the schedule's do, and the
payout is reconciled with its payments, refunds and fees. The Sandbox never moves real money.
"""

from django.core.management.base import BaseCommand, CommandError

from lumapay.tenant_rls import all_organizations
from org_profile.enums import PaymentGateway
from org_profile.models import Organization
from transactions.sandbox.payouts import payout_instant


class Command(BaseCommand):
    help = "Pay a Sandbox clinic out now, in an instant payout of everything it has at the Sandbox."

    def add_arguments(self, parser):
        parser.add_argument("--organization", help="the clinic's slug (default: every clinic on the Sandbox)")

    def handle(self, *args, organization=None, **options):
        with all_organizations():
            clinics = Organization.objects.filter(payment_gateway=PaymentGateway.SANDBOX).order_by("pk")
            if organization:
                clinics = clinics.filter(slug=organization)
                if not clinics.exists():
                    raise CommandError(f"No clinic on the Sandbox has the slug {organization!r}.")
            for clinic in clinics:
                payout = payout_instant(clinic.pk)
                if payout is None:
                    self.stdout.write(f"{clinic.name}: nothing to pay out.")
                else:
                    self.stdout.write(
                        f"{clinic.name}: paid out ${payout.amount_cents / 100:,.2f} now (instant payout {payout.id})."
                    )
