"""``Transaction.has_unresolved_problems``: a failed charge or refund that no later success resolved
(``transactions.problems``), kept by ``transaction_recalculate``; ``last_error`` becomes the newest
unresolved failure's message. The backfill reads the ledger of the transactions that have a
failure event at all (through the partial index on failures), a thousand at a time, and applies
the same rule as the recalculation.
"""

from django.db import migrations, models

from transactions.problems import FAILURE_KINDS, unresolved_failures

BATCH = 1000


class _Event:
    __slots__ = ("kind", "amount_cents", "refund_id", "message")

    def __init__(self, kind, amount_cents, refund_id, message):
        self.kind, self.amount_cents, self.refund_id, self.message = kind, amount_cents, refund_id, message


def backfill(apps, schema_editor):
    Transaction = apps.get_model("transactions", "Transaction")
    TransactionEvent = apps.get_model("transactions", "TransactionEvent")
    failing = sorted(
        set(TransactionEvent.objects.filter(kind__in=sorted(FAILURE_KINDS)).values_list("transaction_id", flat=True))
    )
    paid_requests = set(
        Transaction.objects.filter(charged_cents__gt=0, payment_request__isnull=False).values_list(
            "payment_request_id", flat=True
        )
    )
    for start in range(0, len(failing), BATCH):
        ids = failing[start : start + BATCH]
        events: dict[int, list[_Event]] = {pk: [] for pk in ids}
        for transaction_id, kind, amount, refund_id, message in (
            TransactionEvent.objects.filter(transaction_id__in=ids)
            .order_by("transaction_id", "created_at", "id")
            .values_list("transaction_id", "kind", "amount_cents", "refund_id", "message")
        ):
            events[transaction_id].append(_Event(kind, amount, refund_id, message))
        for transaction in Transaction.objects.filter(pk__in=ids).only("pk", "charged_cents", "payment_request_id"):
            paid_elsewhere = transaction.charged_cents == 0 and transaction.payment_request_id in paid_requests
            problems = unresolved_failures(events[transaction.pk], paid_elsewhere=paid_elsewhere)
            Transaction.objects.filter(pk=transaction.pk).update(
                has_unresolved_problems=bool(problems), last_error=problems[-1].message if problems else ""
            )


class Migration(migrations.Migration):
    dependencies = [
        ("transactions", "0008_exported_transactions"),
    ]

    operations = [
        migrations.AddField(
            model_name="transaction",
            name="has_unresolved_problems",
            field=models.BooleanField(
                default=False,
                help_text='a failed charge or refund that no later success resolved (transactions.problems): the '
                'dashboard\'s "has errors"',
            ),
        ),
        migrations.AlterField(
            model_name="transaction",
            name="last_error",
            field=models.CharField(
                blank=True, help_text="the message of the newest unresolved failure (transactions.problems)", max_length=500
            ),
        ),
        migrations.RunPython(backfill, migrations.RunPython.noop, elidable=True),
    ]
