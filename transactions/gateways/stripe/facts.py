"""Reading Stripe's objects (PaymentIntent, Refund, Dispute, Account, Payout, Balance, and a
payout's balance transactions) into our facts.

Pure functions of the objects: no call to Stripe, no database.
"""

from __future__ import annotations

from datetime import date, datetime, timezone as dt_timezone

from ..base import (
    AccountFact,
    BalanceAmount,
    BalanceFact,
    ChargeFact,
    DisputeFact,
    DisputeFunds,
    PayoutFact,
    PayoutLineFact,
    RefundFact,
)
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



# -- payouts and the balance (the clinic's connected account) -----------------------------------

# A balance transaction's ``reporting_category``, as ``payouts.enums.PayoutLineKind`` names it
# (transactions may not import payouts: the values are written out here).
LINE_KIND_BY_REPORTING_CATEGORY = {
    "charge": "charge",
    "refund": "refund",
    "refund_failure": "refund_failure",
    "dispute": "dispute",
    "dispute_reversal": "dispute_reversal",
    "fee": "fee",
    "other_adjustment": "adjustment",
    "payout_reversal": "payout_failure",
}
# Balance transaction types that are a line's kind whatever their reporting category says.
LINE_KIND_BY_TYPE = {
    "stripe_fee": "fee",
    "application_fee": "fee",
    "application_fee_refund": "fee",
    "stripe_fx_fee": "fee",
    "tax_fee": "fee",
    "payout_failure": "payout_failure",
    "payout_cancel": "payout_failure",
}
LINE_KIND_OTHER = "other"
# The payout's own withdrawal from the balance: listed with ``payout=``, never one of its lines.
PAYOUT_OWN_TYPE = "payout"

# Stripe's payout failure codes, in words a clinic can act on, for a failed payout that comes
# without Stripe's own message.
PAYOUT_FAILURE_MESSAGES = {
    "account_closed": "The bank account has been closed.",
    "account_frozen": "The bank account has been frozen.",
    "bank_account_restricted": "The bank account has restrictions on the type or number of payouts allowed.",
    "bank_ownership_changed": "The bank account's owner changed; update the bank account in Stripe.",
    "could_not_process": "The bank could not process this payout.",
    "debit_not_authorized": "Debit transactions are not approved on the bank account.",
    "declined": "The bank declined this payout.",
    "incorrect_account_holder_address": "The bank says the account holder's address is incorrect.",
    "incorrect_account_holder_name": "The bank says the account holder's name is incorrect.",
    "incorrect_account_holder_tax_id": "The bank says the account holder's tax id is incorrect.",
    "insufficient_funds": "The Stripe balance could not cover the payout.",
    "invalid_account_number": "The bank account number is not valid.",
    "invalid_currency": "The bank account cannot receive this currency.",
    "no_account": "The bank account does not exist.",
    "unsupported_card": "The bank no longer supports payouts to this card.",
}
PAYOUT_FAILURE_UNKNOWN = "The payout failed at the bank."


def date_of(value) -> date | None:
    """A Stripe date (Unix seconds at midnight UTC: ``arrival_date``, ``available_on``) as a day."""
    return datetime.fromtimestamp(value, tz=dt_timezone.utc).date() if value else None


def bank_of(destination) -> tuple[str, str]:
    """The bank's name and the last four digits of an expanded payout destination (a bank account,
    or a debit card for an instant payout: its brand); empty when it is only an id."""
    if not isinstance(destination, dict):
        return "", ""
    if destination.get("object") == "card":
        return (destination.get("brand") or "")[:100], (destination.get("last4") or "")[-4:]
    return (destination.get("bank_name") or "")[:100], (destination.get("last4") or "")[-4:]


def payout_fact_from_payout(obj: dict, *, organization_id: int, as_of: int = 0, bank: tuple[str, str] | None = None) -> PayoutFact:
    """A Payout on the clinic's account. ``bank``: the bank's name and last four when the payout's
    destination is not expanded (read apart)."""
    bank_name, bank_last4 = bank if bank is not None else bank_of(obj.get("destination"))
    status = obj.get("status") or "pending"
    failure_code = obj.get("failure_code") or ""
    failure_message = obj.get("failure_message") or ""
    if status == "failed" and not failure_message:
        failure_message = PAYOUT_FAILURE_MESSAGES.get(failure_code, PAYOUT_FAILURE_UNKNOWN)
    return PayoutFact(
        organization_id=organization_id,
        gateway_payout_id=obj["id"],
        amount_cents=obj.get("amount") or 0,
        currency=(obj.get("currency") or "usd").lower(),
        status=status,
        method=obj.get("method") or "standard",
        created=timestamp_of(obj.get("created")),
        arrival_date=date_of(obj.get("arrival_date")),
        automatic=bool(obj.get("automatic")),
        bank_name=bank_name,
        bank_last4=bank_last4,
        trace_id=((obj.get("trace_id") or {}).get("value") or "")[:100],
        failure_code=failure_code[:60],
        failure_message=failure_message[:500],
        description=(obj.get("description") or "")[:200],
        as_of=as_of,
    )


def balance_fact_from_balance(obj: dict, *, organization_id: int, as_of: int = 0) -> BalanceFact:
    """A Balance: what is available and pending in each currency (Stripe lists each side apart)."""
    available: dict[str, int] = {}
    pending: dict[str, int] = {}
    for side, totals in (("available", available), ("pending", pending)):
        for entry in obj.get(side) or []:
            currency = (entry.get("currency") or "").lower()
            totals[currency] = totals.get(currency, 0) + (entry.get("amount") or 0)
    currencies = sorted(set(available) | set(pending))
    return BalanceFact(
        organization_id=organization_id,
        amounts=tuple(
            BalanceAmount(currency=currency, available_cents=available.get(currency, 0), pending_cents=pending.get(currency, 0))
            for currency in currencies
        ),
        as_of=as_of,
    )


def line_kind(balance_transaction: dict) -> str:
    """What a balance transaction is, as ``payouts.enums.PayoutLineKind`` names it."""
    by_type = LINE_KIND_BY_TYPE.get(balance_transaction.get("type") or "")
    if by_type:
        return by_type
    return LINE_KIND_BY_REPORTING_CATEGORY.get(balance_transaction.get("reporting_category") or "", LINE_KIND_OTHER)


def charge_of_source(source) -> str:
    """Our charge id (the PaymentIntent's, as the ledger keys a Stripe payment) of a balance
    transaction's source when it concerns a payment: a charge, a refund or a dispute (expanded),
    falling back to the Stripe charge id when the source names no PaymentIntent."""
    if isinstance(source, dict):
        if source.get("object") == "charge":
            return id_of(source.get("payment_intent")) or source.get("id") or ""
        if source.get("object") in ("refund", "dispute"):
            return id_of(source.get("payment_intent")) or id_of(source.get("charge"))
        return ""
    if isinstance(source, str) and source.startswith(("ch_", "py_")):
        return source
    return ""


def payout_line_from_balance_transaction(obj: dict) -> PayoutLineFact:
    return PayoutLineFact(
        gateway_line_id=obj["id"],
        kind=line_kind(obj),
        amount_cents=obj.get("amount") or 0,
        fee_cents=obj.get("fee") or 0,
        net_cents=obj.get("net") or 0,
        currency=(obj.get("currency") or "usd").lower(),
        created=timestamp_of(obj.get("created")),
        available_on=date_of(obj.get("available_on")),
        source_id=id_of(obj.get("source"))[:100],
        charge_id=charge_of_source(obj.get("source"))[:100],
        description=(obj.get("description") or "")[:300],
    )
