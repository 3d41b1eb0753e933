"""Payouts: money sent from a clinic's balance at its gateway to its bank, what each payout carries
(its lines: the gateway's balance transactions), and the balance itself.

Everything here is the gateway's word, stored: written only by ``payouts.services`` from facts
(``transactions.gateways.base.PayoutFact``, ``BalanceFact``, ``PayoutLineFact``), never typed.
"""

from django.db import models
from django.db.models import Q

from org_profile.models import Organization
from transactions.models import Transaction

from .enums import PayoutLineKind, PayoutMethod, PayoutStatus, Reconciliation


class Payout(models.Model):
    """One payout to the clinic's bank account, as the gateway last reported it."""

    organization = models.ForeignKey(Organization, on_delete=models.PROTECT, related_name="+")
    gateway = models.CharField(max_length=20)
    gateway_payout_id = models.CharField(max_length=100)
    amount_cents = models.BigIntegerField(help_text="what reaches the bank")
    currency = models.CharField(max_length=3)
    status = models.CharField(max_length=20, choices=PayoutStatus.choices)
    method = models.CharField(max_length=20, choices=PayoutMethod.choices, default=PayoutMethod.STANDARD)
    automatic = models.BooleanField(default=True, help_text="made by the gateway's payout schedule")
    created_at = models.DateTimeField(help_text="when the gateway created the payout")
    arrival_date = models.DateField(help_text="when the bank receives it (expected, until paid)")
    bank_name = models.CharField(max_length=100, blank=True)
    bank_last4 = models.CharField(max_length=4, blank=True)
    trace_id = models.CharField(max_length=100, blank=True, help_text="the bank network's trace id, to find the deposit")
    failure_code = models.CharField(max_length=60, blank=True)
    failure_message = models.CharField(max_length=500, blank=True)
    description = models.CharField(max_length=200, blank=True)
    as_of = models.BigIntegerField(default=0, help_text="when the gateway said the above (Unix seconds)")

    # Reconciliation: the lines fetched from the gateway, and whether they add up to the payout.
    reconciliation = models.CharField(max_length=20, choices=Reconciliation.choices, default=Reconciliation.WAITING)
    lines_count = models.PositiveIntegerField(default=0)
    lines_net_cents = models.BigIntegerField(null=True, blank=True, help_text="the lines' net amounts added up")
    reconciled_at = models.DateTimeField(null=True, blank=True, help_text="when the lines were last fetched")
    reconcile_error = models.CharField(max_length=500, blank=True, help_text="why the last fetch of the lines failed")

    recorded_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["gateway", "gateway_payout_id"], name="payout_unique_per_gateway"),
        ]
        indexes = [
            # The list: newest first, keyset paged, per organization (every filter narrows this).
            models.Index(fields=["organization", "-created_at", "-id"], name="payout_org_created"),
            models.Index(fields=["organization", "status", "-created_at", "-id"], name="payout_org_status_created"),
            models.Index(fields=["organization", "arrival_date"], name="payout_org_arrival"),
            # The beat that fetches lines: payouts not reconciled yet.
            models.Index(fields=["reconciliation", "updated_at"], name="payout_reconciliation_due",
                         condition=~Q(reconciliation="matched")),
        ]

    def __str__(self) -> str:
        return self.gateway_payout_id

    @property
    def difference_cents(self) -> int | None:
        """What the payout is and its lines do not add up to (None until they are fetched)."""
        if self.lines_net_cents is None:
            return None
        return self.amount_cents - self.lines_net_cents


class PayoutLine(models.Model):
    """One movement of money a payout carries: a payment, refund, fee, dispute or adjustment,
    linked to our transaction when it concerns one."""

    organization = models.ForeignKey(Organization, on_delete=models.PROTECT, related_name="+")
    payout = models.ForeignKey(Payout, on_delete=models.CASCADE, related_name="lines")
    gateway_line_id = models.CharField(max_length=100)
    kind = models.CharField(max_length=30, choices=PayoutLineKind.choices)
    amount_cents = models.BigIntegerField(help_text="gross; negative when money left the balance")
    fee_cents = models.BigIntegerField(default=0)
    net_cents = models.BigIntegerField(help_text="amount less fee: what it adds to the payout")
    currency = models.CharField(max_length=3)
    created_at = models.DateTimeField()
    available_on = models.DateField(null=True, blank=True)
    source_id = models.CharField(max_length=100, blank=True, help_text="the gateway's id of the charge, refund or dispute")
    charge_id = models.CharField(max_length=100, blank=True, help_text="the gateway's id of the charge it concerns")
    # No description is kept: a charge's description at the gateway is whatever was typed where
    # the charge was made (a clinic charging in its own Stripe Dashboard may write a patient's
    # name), and payout pages name no patient. The kind and the gateway's ids say what a line is.
    transaction = models.ForeignKey(
        Transaction, null=True, blank=True, on_delete=models.SET_NULL, related_name="payout_lines"
    )

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["payout", "gateway_line_id"], name="payout_line_unique_per_payout"),
        ]
        indexes = [
            models.Index(fields=["payout", "created_at", "id"], name="payout_line_payout_created"),
        ]

    def __str__(self) -> str:
        return self.gateway_line_id


class GatewayBalance(models.Model):
    """A clinic's balance at its gateway in one currency, as last reported, with the next payout
    the gateway's schedule will make."""

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="+")
    currency = models.CharField(max_length=3)
    available_cents = models.BigIntegerField(default=0)
    pending_cents = models.BigIntegerField(default=0)
    next_payout_date = models.DateField(null=True, blank=True)
    next_payout_estimate_cents = models.BigIntegerField(null=True, blank=True)
    as_of = models.BigIntegerField(default=0, help_text="when the gateway said the above (Unix seconds)")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["organization", "currency"], name="gateway_balance_unique_per_currency"),
        ]
