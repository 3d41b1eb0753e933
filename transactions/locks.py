"""Every row lock in the payments app, in one place and one order: payment request (or one of
its deliveries), then transaction, then refund. Call these only inside ``transaction.atomic()``."""

from .models import PaymentRequest, PaymentRequestDelivery, Refund, Transaction


def payment_request_lock(*, payment_request_id: int) -> PaymentRequest:
    return PaymentRequest.objects.select_for_update().select_related("organization", "patient", "location").get(
        pk=payment_request_id
    )


def transaction_lock(*, transaction_id: int) -> Transaction:
    return Transaction.objects.select_for_update().select_related("organization").get(pk=transaction_id)


def refund_lock(*, refund_id: int) -> Refund:
    return Refund.objects.select_for_update().get(pk=refund_id)


def payment_request_delivery_lock(*, delivery_id: int) -> PaymentRequestDelivery | None:
    """The delivery with its request and patient, locked alone (not the rows it joins)."""
    return (
        PaymentRequestDelivery.objects.select_for_update(of=("self",))
        .select_related("payment_request__organization", "payment_request__patient")
        .filter(pk=delivery_id)
        .first()
    )
