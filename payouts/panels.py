"""Payouts' part of a transaction's page: which payout carried its money to the bank.

Registered with ``transactions.transaction_panels`` from ``PayoutsConfig.ready``. Managers and
administrators see it, with a link to the payout; sub-account users see nothing of payouts.
"""

from __future__ import annotations

from django.http import HttpRequest

from org_profile.access import MANAGERS
from transactions.transaction_panels import TransactionPanels

from .selectors import payouts_carrying


def transaction_payouts_context(request: HttpRequest, transaction) -> dict:
    membership = getattr(request, "membership", None)
    if membership is None or membership.role not in MANAGERS:
        return {}
    return {"payouts_carrying": payouts_carrying(transaction=transaction)}


PAYOUT_PANELS = TransactionPanels(
    templates={"after_money": "payouts/_transaction_payouts.html"},
    context=transaction_payouts_context,
)
