"""Refunds made outside LumaPay, and disputes' money read from their balance transactions.

- ``Refund.is_made_outside``: a refund made in the clinic's Stripe Dashboard is imported as a refund
  row of its own, so the ledger counts it.
- ``Transaction.dispute_fee_cents`` and the ledger kinds of a dispute's money: the disputed amount
  withdrawn and reinstated, the dispute fee taken and given back, and inquiries, which move none.
- Before, a dispute's ``dispute_opened`` event carried the disputed amount as withdrawn (and
  ``dispute_won`` as given back), inquiries included. For each such event of a dispute that is not
  an inquiry, the same amount is written as a withdrawal (reinstatement) event at the same time,
  keyed ``…:before-balance-transactions``: the recalculation uses those for a dispute until a report
  of its balance transactions arrives, so chargebacks recorded before keep their totals. Inquiries
  get none: their amount is released at the transaction's next recalculation.
"""

from django.db import migrations, models

LEGACY_KEY_SUFFIX = "before-balance-transactions"


def legacy_dispute_funds(apps, schema_editor):
    Dispute = apps.get_model("transactions", "Dispute")
    TransactionEvent = apps.get_model("transactions", "TransactionEvent")
    inquiries = set(Dispute.objects.filter(status__startswith="warning_").values_list("gateway_dispute_id", flat=True))
    legacy = TransactionEvent.objects.filter(kind__in=["dispute_opened", "dispute_won"], amount_cents__gt=0).exclude(
        gateway_reference__in=inquiries
    )
    for event in legacy.iterator():
        stage = "withdrawn" if event.kind == "dispute_opened" else "reinstated"
        funds, created = TransactionEvent.objects.get_or_create(
            transaction_id=event.transaction_id,
            idempotency_key=f"dispute:{event.gateway_reference}:{stage}:{LEGACY_KEY_SUFFIX}",
            defaults={
                "organization_id": event.organization_id,
                "kind": f"dispute_funds_{stage}",
                "amount_cents": event.amount_cents,
                "currency": event.currency,
                "actor_type": event.actor_type,
                "gateway_reference": event.gateway_reference,
                "gateway_event_id": event.gateway_event_id,
            },
        )
        if created:
            TransactionEvent.objects.filter(pk=funds.pk).update(created_at=event.created_at)


class Migration(migrations.Migration):

    dependencies = [
        ('transactions', '0013_patient_message_outbox'),
    ]

    operations = [
        migrations.AddField(
            model_name='refund',
            name='is_made_outside',
            field=models.BooleanField(default=False, help_text="made at the payment processor (the clinic's own Stripe Dashboard), not through LumaPay: imported from the processor's events or its list of the charge's refunds"),
        ),
        migrations.AddField(
            model_name='transaction',
            name='dispute_fee_cents',
            field=models.BigIntegerField(default=0, help_text="the processor's dispute fees taken, less those given back (from the ledger)"),
        ),
        migrations.AlterField(
            model_name='transactionevent',
            name='kind',
            field=models.CharField(choices=[('charge_requested', 'Charge requested'), ('charge_succeeded', 'Charge succeeded'), ('charge_failed', 'Charge failed'), ('refund_requested', 'Refund requested'), ('refund_succeeded', 'Refund succeeded'), ('refund_failed', 'Refund failed'), ('charge_authorized', 'Payment authorized'), ('authorization_released', 'Authorization released'), ('dispute_opened', 'Dispute opened'), ('dispute_updated', 'Dispute under review'), ('dispute_won', 'Dispute won'), ('dispute_lost', 'Dispute lost'), ('inquiry_opened', 'Inquiry opened'), ('inquiry_closed', 'Inquiry closed'), ('dispute_funds_withdrawn', 'Disputed amount withdrawn'), ('dispute_funds_reinstated', 'Disputed amount reinstated'), ('dispute_fee', 'Dispute fee'), ('dispute_fee_returned', 'Dispute fee returned')], max_length=30),
        ),
        migrations.RunPython(legacy_dispute_funds, migrations.RunPython.noop),
    ]
