"""Which of our transactions a gateway's event is about: asked by every gateway and by the ledger."""

from __future__ import annotations

from django.db.models import Q

from ..models import Transaction


def gateway_transaction(
    *,
    gateway: str,
    checkout_id: str = "",
    charge_id: str = "",
    organization_id: int | None = None,
    transaction_id: int | None = None,
) -> Transaction | None:
    """The transaction the gateway knows by these ids; None when it is not one of ours.

    By the gateway's checkout id first, then by its charge id (the payment recorded on the
    transaction, or the checkout itself when the payment was made without one: a card on file).
    ``organization_id`` confines the search to one clinic's transactions; only there is our own
    ``transaction_id`` (carried back in the gateway's metadata, which the clinic's account can
    write) trusted.
    """
    ours = Transaction.objects.filter(vendor=gateway)
    if organization_id is not None:
        ours = ours.filter(organization_id=organization_id)
    if checkout_id:
        found = ours.filter(gateway_checkout_id=checkout_id).first()
        if found is not None:
            return found
    if charge_id:
        found = ours.filter(Q(gateway_charge_id=charge_id) | Q(gateway_checkout_id=charge_id)).first()
        if found is not None:
            return found
    if transaction_id is not None and organization_id is not None:
        return ours.filter(pk=transaction_id).first()
    return None
