"""Make a copay held at the Sandbox look older, to try renewal and lapse without waiting days:

    manage.py sandbox_hold_age 42 --days 6.5   # transaction 42's hold, as if made 6½ days ago
    manage.py sandbox_hold_age 42 --days 8     # past 7 days: the Sandbox lets it lapse

Then the beat passes (or ``manage.py shell -c "from transactions.tasks import holds_renew; holds_renew()"``)
renew a hold older than 6 days whose visit is still ahead; a capture of a lapsed hold says why it failed.
Only for holds at the Sandbox, which never moves money.
"""

from datetime import timedelta

from django.core.management.base import BaseCommand, CommandError

from lumapay.errors import ApplicationError
from lumapay.tenant_rls import all_organizations
from transactions.models import Transaction
from transactions.services.holds import sandbox_hold_age


class Command(BaseCommand):
    help = "Make a copay held at the Sandbox look older (renewal and lapse in the demo)."

    def add_arguments(self, parser):
        parser.add_argument("transaction", type=int, help="the held transaction's id")
        parser.add_argument("--days", type=float, required=True, help="how many days older (6.5: due for renewal; 8: lapsed)")

    def handle(self, *args, transaction, days, **options):
        with all_organizations():
            held = Transaction.objects.filter(pk=transaction).first()
            if held is None:
                raise CommandError(f"No transaction {transaction}.")
            try:
                held = sandbox_hold_age(transaction=held, by=timedelta(days=days))
            except ApplicationError as error:
                raise CommandError(error.message)
        self.stdout.write(f"Transaction {held.pk}: the hold now looks {days:g} days old.")
