"""Reading Stripe's objects (PaymentIntent, Refund, Dispute, Account) into our facts.

Pure functions of the objects: no call to Stripe, no database.
"""

from __future__ import annotations

from ..base import AccountFact, ChargeFact, DisputeFact, DisputeFunds, RefundFact
from .client import METADATA_IDEMPOTENCY_KEY, id_of, timestamp_of

REFUND_FAILURE_MESSAGES = {
    "lost_or_stolen_card": "The card was reported lost or stolen.",
    "expired_or_canceled_card": "The card has expired or was cancelled.",
    "charge_for_pending_refund_disputed": "The patient disputed the charge while the refund was pending.",
    "insufficient_funds": "The clinic's Stripe balance could not cover the refund.",
    "declined": "The card issuer declined the refund.",
    "merchant_request": "The refund was cancelled.",
    "unknown": "Stripe could not complete the refund.",
}
# A refund cancelled before it reached the card (from the Stripe Dashboard, or by Stripe) names no
# failure reason.
REFUND_CANCELED_MESSAGE = "The refund was cancelled at Stripe before it reached the card."
# Stripe's reasons for a refund, as whoever made it chose them (the Dashboard offers these).
REFUND_REASONS = {
    "duplicate": "Duplicate payment",
    "fraudulent": "Fraudulent payment",
    "requested_by_customer": "Requested by the customer",
    "expired_uncaptured_charge": "The held amount expired uncaptured",
}


def _card_of(pi: dict, charge: dict | None) -> dict:
    details = ((charge or {}).get("payment_method_details") or {}).get("card") or {}
    if details:
        return details
    for payment_method in (pi.get("payment_method"), (pi.get("last_payment_error") or {}).get("payment_method")):
        if isinstance(payment_method, dict) and payment_method.get("card"):
            return payment_method["card"]
    return {}


def charge_fact_from_payment_intent(pi: dict) -> ChargeFact:
    """What a PaymentIntent says about the payment. Its charge may be an id or, expanded, the
    charge with its balance transaction (the fee)."""
    charge = pi.get("latest_charge") if isinstance(pi.get("latest_charge"), dict) else None
    card = _card_of(pi, charge)
    brand, last4 = (card.get("brand") or "").lower(), card.get("last4") or ""
    status = pi.get("status")
    if status == "succeeded":
        balance_transaction = (charge or {}).get("balance_transaction")
        fee = (balance_transaction.get("fee") or 0) if isinstance(balance_transaction, dict) else 0
        # What Stripe says the platform took: the charge's application fee, else the PaymentIntent's.
        platform_fee = (charge or {}).get("application_fee_amount")
        if platform_fee is None:
            platform_fee = pi.get("application_fee_amount")
        return ChargeFact(
            status="succeeded",
            charge_id=pi["id"],
            amount_cents=pi.get("amount_received") or (charge or {}).get("amount_captured") or pi["amount"],
            card_brand=brand,
            card_last4=last4,
            authorization_code=card.get("authorization_code") or "",
            fee_cents=fee,
            platform_fee_cents=platform_fee or 0,
        )
    if status == "requires_capture":
        return ChargeFact(
            status="authorized",
            charge_id=pi["id"],
            amount_cents=pi.get("amount_capturable") or pi["amount"],
            card_brand=brand,
            card_last4=last4,
            authorization_code=card.get("authorization_code") or "",
        )
    error = pi.get("last_payment_error") or {}
    if status == "canceled" and not error and pi.get("capture_method") == "manual":
        return ChargeFact(status="released", charge_id=pi["id"], amount_cents=pi["amount"], card_brand=brand, card_last4=last4)
    if error and status in ("requires_payment_method", "canceled"):
        # Each declined attempt is its own charge: one ledger event per attempt.
        failed_charge = error.get("charge") or id_of(pi.get("latest_charge")) or pi["id"]
        return ChargeFact(
            status="failed",
            charge_id=failed_charge,
            card_brand=brand,
            card_last4=last4,
            failure_code=error.get("decline_code") or error.get("code") or "",
            failure_message=error.get("message") or "The payment failed.",
        )
    return ChargeFact(status="pending", charge_id=pi["id"])


def refund_fact_from_refund(obj: dict) -> RefundFact:
    status = {"succeeded": "succeeded", "failed": "failed", "canceled": "failed"}.get(obj.get("status"), "pending")
    failure_message = ""
    if status == "failed":
        failure_reason = obj.get("failure_reason")
        if obj.get("status") == "canceled" and not failure_reason:
            failure_message = REFUND_CANCELED_MESSAGE
        else:
            failure_message = REFUND_FAILURE_MESSAGES.get(failure_reason or "unknown", REFUND_FAILURE_MESSAGES["unknown"])
    return RefundFact(
        status=status,
        gateway_refund_id=obj["id"],
        amount_cents=obj["amount"],
        idempotency_key=(obj.get("metadata") or {}).get(METADATA_IDEMPOTENCY_KEY, ""),
        failure_message=failure_message,
        reason=REFUND_REASONS.get(obj.get("reason") or "", ""),
    )


def dispute_fact_from_dispute(obj: dict, *, as_of: int = 0) -> DisputeFact:
    """A dispute's status and its money. Only its ``balance_transactions`` (zero, one or two:
    the withdrawal with the dispute fee, then the reinstatement when won) move money; an
    inquiry (``warning_*``) has none, whatever its amount."""
    funds = tuple(
        DisputeFunds(
            gateway_reference=balance_transaction["id"],
            amount_cents=balance_transaction.get("amount") or 0,
            fee_cents=balance_transaction.get("fee") or 0,
        )
        for balance_transaction in obj.get("balance_transactions") or []
        if isinstance(balance_transaction, dict) and balance_transaction.get("id")
    )
    return DisputeFact(
        gateway_dispute_id=obj["id"],
        amount_cents=obj.get("amount") or 0,
        status=obj.get("status") or "needs_response",
        reason=obj.get("reason") or "",
        evidence_due_by=timestamp_of((obj.get("evidence_details") or {}).get("due_by")),
        as_of=as_of,
        funds=funds,
    )


def account_fact_from_account(obj: dict, *, as_of: int = 0) -> AccountFact:
    requirements = obj.get("requirements") or {}
    due = set(requirements.get("currently_due") or []) | set(requirements.get("past_due") or [])
    return AccountFact(
        account_id=obj["id"],
        charges_enabled=bool(obj.get("charges_enabled")),
        payouts_enabled=bool(obj.get("payouts_enabled")),
        details_submitted=bool(obj.get("details_submitted")),
        requirements_due=sorted(due),
        disabled_reason=requirements.get("disabled_reason") or "",
        as_of=as_of,
        currently_due=tuple(sorted(requirements.get("currently_due") or [])),
        past_due=tuple(sorted(requirements.get("past_due") or [])),
        eventually_due=tuple(sorted(requirements.get("eventually_due") or [])),
        current_deadline=requirements.get("current_deadline") or None,
    )

