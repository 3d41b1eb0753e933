"""Stripe API objects built by the project itself, for what the test Stripe server (localstripe)
does not serve: Checkout Sessions, Connect accounts and account links, disputes, events, payouts,
their bank accounts and the balance, and the full shape of a PaymentIntent, its Charge and the
Charge's balance transaction.

Each ``<object>_build(**fields)`` returns a fresh dict shaped as Stripe's API reference describes
the object at the pinned API version (``STRIPE_API_VERSION``): every field Stripe sends, nullable
ones as ``None`` unless they matter here, values as a test-mode US clinic taking card payments
would see them. ``fields`` replace top-level fields; a name the object does not have is refused,
so a typo cannot add a field Stripe never sends.

tests/transactions/test_stripe_builders_contract.py checks these shapes, key by key and type by
type, against Stripe's own published example objects when they are at hand.
"""

from __future__ import annotations

import secrets
import time
from typing import Any

__all__ = [
    "account_build",
    "account_link_build",
    "balance_build",
    "balance_transaction_build",
    "bank_account_build",
    "charge_build",
    "checkout_session_build",
    "dispute_build",
    "event_build",
    "payment_intent_build",
    "payout_build",
    "refund_build",
    "stripe_id",
]


def stripe_id(prefix: str, length: int = 24) -> str:
    """An id in Stripe's style: ``pi_3Q…`` (prefix, underscore, letters and digits)."""
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
    return f"{prefix}_" + "".join(secrets.choice(alphabet) for _ in range(length))


def _now() -> int:
    return int(time.time())


def _with(obj: dict, fields: dict[str, Any]) -> dict:
    unknown = sorted(set(fields) - set(obj))
    if unknown:
        raise KeyError(f"a Stripe {obj['object']} has no field {', '.join(unknown)}")
    obj.update(fields)
    return obj


def _address() -> dict:
    return {"city": None, "country": None, "line1": None, "line2": None, "postal_code": None, "state": None}


def _list(url: str) -> dict:
    return {"object": "list", "data": [], "has_more": False, "url": url}


# -- Checkout -------------------------------------------------------------------------------------


def checkout_session_build(**fields) -> dict:
    """A Checkout Session in payment mode, open and unpaid, for a one-line card payment."""
    session_id = fields.get("id") or stripe_id("cs_test", 58)
    now = _now()
    session = {
        "id": session_id,
        "object": "checkout.session",
        "adaptive_pricing": {"enabled": False},
        "after_expiration": None,
        "allow_promotion_codes": None,
        "amount_subtotal": 10000,
        "amount_total": 10000,
        "automatic_tax": {"enabled": False, "liability": None, "provider": None, "status": None},
        "billing_address_collection": None,
        "cancel_url": "https://pay.clinic.example/pay/cancelled",
        "client_reference_id": None,
        "client_secret": None,
        "collected_information": None,
        "consent": None,
        "consent_collection": None,
        "created": now,
        "currency": "usd",
        "currency_conversion": None,
        "custom_fields": [],
        "custom_text": {
            "after_submit": None,
            "shipping_address": None,
            "submit": None,
            "terms_of_service_acceptance": None,
        },
        "customer": None,
        "customer_account": None,
        "customer_creation": "if_required",
        "customer_details": None,
        "customer_email": None,
        "discounts": [],
        "expires_at": now + 24 * 3600,
        "integration_identifier": None,
        "invoice": None,
        "invoice_creation": {
            "enabled": False,
            "invoice_data": {
                "account_tax_ids": None,
                "custom_fields": None,
                "description": None,
                "footer": None,
                "issuer": None,
                "metadata": {},
                "rendering_options": None,
            },
        },
        "livemode": False,
        "locale": None,
        "managed_payments": None,
        "metadata": {},
        "mode": "payment",
        "origin_context": None,
        "payment_intent": None,
        "payment_link": None,
        "payment_method_collection": "if_required",
        "payment_method_configuration_details": None,
        "payment_method_options": {"card": {"request_three_d_secure": "automatic"}},
        "payment_method_types": ["card"],
        "payment_status": "unpaid",
        "permissions": None,
        "phone_number_collection": {"enabled": False},
        "recovered_from": None,
        "saved_payment_method_options": None,
        "setup_intent": None,
        "shipping_address_collection": None,
        "shipping_cost": None,
        "shipping_options": [],
        "status": "open",
        "submit_type": None,
        "subscription": None,
        "success_url": "https://pay.clinic.example/pay/done",
        "total_details": {"amount_discount": 0, "amount_shipping": 0, "amount_tax": 0},
        "ui_mode": "hosted",
        "url": f"https://checkout.stripe.com/c/pay/{session_id}",
        "wallet_options": None,
    }
    return _with(session, fields)


# -- Connect --------------------------------------------------------------------------------------


def account_build(**fields) -> dict:
    """A Standard connected account just created: nothing submitted, charges and payouts off, and
    the requirements Stripe lists before onboarding."""
    account_id = fields.get("id") or stripe_id("acct", 16)
    due = [
        "business_profile.mcc",
        "business_profile.url",
        "external_account",
        "tos_acceptance.date",
        "tos_acceptance.ip",
    ]
    account = {
        "id": account_id,
        "object": "account",
        "business_profile": {
            "annual_revenue": None,
            "estimated_worker_count": None,
            "mcc": None,
            "minority_owned_business_designation": None,
            "name": None,
            "product_description": None,
            "support_address": None,
            "support_email": None,
            "support_phone": None,
            "support_url": None,
            "url": None,
        },
        "business_type": None,
        "capabilities": {"card_payments": "inactive", "transfers": "inactive"},
        "charges_enabled": False,
        "controller": {"type": "application"},
        "country": "US",
        "created": _now(),
        "default_currency": "usd",
        "details_submitted": False,
        "email": None,
        "external_accounts": _list(f"/v1/accounts/{account_id}/external_accounts"),
        "future_requirements": {
            "alternatives": [],
            "current_deadline": None,
            "currently_due": [],
            "disabled_reason": None,
            "errors": [],
            "eventually_due": [],
            "past_due": [],
            "pending_verification": [],
        },
        "metadata": {},
        "payouts_enabled": False,
        "requirements": {
            "alternatives": [],
            "current_deadline": None,
            "currently_due": list(due),
            "disabled_reason": "requirements.past_due",
            "errors": [],
            "eventually_due": list(due),
            "past_due": list(due),
            "pending_verification": [],
        },
        "settings": {
            "bacs_debit_payments": {"display_name": None, "service_user_number": None},
            "branding": {"icon": None, "logo": None, "primary_color": None, "secondary_color": None},
            "card_issuing": {"tos_acceptance": {"date": None, "ip": None}},
            "card_payments": {
                "decline_on": {"avs_failure": False, "cvc_failure": False},
                "statement_descriptor_prefix": None,
                "statement_descriptor_prefix_kana": None,
                "statement_descriptor_prefix_kanji": None,
            },
            "dashboard": {"display_name": None, "timezone": "America/New_York"},
            "invoices": {"default_account_tax_ids": None, "hosted_payment_method_save": "offer"},
            "payments": {
                "statement_descriptor": None,
                "statement_descriptor_kana": None,
                "statement_descriptor_kanji": None,
                "statement_descriptor_prefix_kana": None,
                "statement_descriptor_prefix_kanji": None,
            },
            "payouts": {
                "debit_negative_balances": True,
                "schedule": {"delay_days": 2, "interval": "daily"},
                "statement_descriptor": None,
            },
            "sepa_debit_payments": {},
        },
        "tos_acceptance": {"date": None, "ip": None, "user_agent": None},
        "type": "standard",
    }
    return _with(account, fields)


def account_link_build(**fields) -> dict:
    """An onboarding link: a single-use URL valid for a few minutes."""
    now = _now()
    link = {
        "object": "account_link",
        "created": now,
        "expires_at": now + 300,
        "url": f"https://connect.stripe.com/setup/s/{stripe_id('acct', 16)}/{secrets.token_urlsafe(9)}",
    }
    return _with(link, fields)


# -- payments -------------------------------------------------------------------------------------


def balance_transaction_build(**fields) -> dict:
    """The balance transaction of a $100.00 card charge: Stripe's fee (2.9% + 30¢) and the net."""
    amount = fields.get("amount", 10000)
    fee = fields.get("fee", round(amount * 0.029) + 30)
    now = _now()
    balance_transaction = {
        "id": stripe_id("txn"),
        "object": "balance_transaction",
        "amount": amount,
        "available_on": now + 2 * 24 * 3600,
        "balance_type": "payments",
        "created": now,
        "currency": "usd",
        "description": None,
        "exchange_rate": None,
        "fee": fee,
        "fee_details": [
            {"amount": fee, "application": None, "currency": "usd", "description": "Stripe processing fees", "type": "stripe_fee"}
        ],
        "net": amount - fee,
        "reporting_category": "charge",
        "source": stripe_id("ch"),
        "status": "pending",
        "type": "charge",
    }
    _with(balance_transaction, fields)
    if "net" not in fields:
        balance_transaction["net"] = balance_transaction["amount"] - balance_transaction["fee"]
    if "fee_details" not in fields:
        balance_transaction["fee_details"][0]["amount"] = balance_transaction["fee"]
    return balance_transaction


def _card_details(**card) -> dict:
    details = {
        "amount_authorized": 10000,
        "authorization_code": "123456",
        "brand": "visa",
        "checks": {"address_line1_check": None, "address_postal_code_check": None, "cvc_check": "pass"},
        "country": "US",
        "exp_month": 12,
        "exp_year": 2034,
        "extended_authorization": {"status": "disabled"},
        "fingerprint": secrets.token_hex(8),
        "funding": "credit",
        "incremental_authorization": {"status": "unavailable"},
        "installments": None,
        "last4": "4242",
        "mandate": None,
        "multicapture": {"status": "unavailable"},
        "network": "visa",
        "network_token": {"used": False},
        "network_transaction_id": secrets.token_hex(8),
        "overcapture": {"maximum_amount_capturable": 10000, "status": "unavailable"},
        "regulated_status": "unregulated",
        "three_d_secure": None,
        "transaction_link_id": None,
        "wallet": None,
    }
    details.update(card)
    return details


def charge_build(**fields) -> dict:
    """A succeeded, captured $100.00 Visa charge (4242), its balance transaction by id."""
    charge_id = fields.get("id") or stripe_id("ch")
    amount = fields.get("amount", 10000)
    charge = {
        "id": charge_id,
        "object": "charge",
        "amount": amount,
        "amount_captured": amount,
        "amount_refunded": 0,
        "application": None,
        "application_fee": None,
        "application_fee_amount": None,
        "balance_transaction": stripe_id("txn"),
        "billing_details": {"address": _address(), "email": None, "name": None, "phone": None, "tax_id": None},
        "calculated_statement_descriptor": "LUMAPAY CLINIC",
        "captured": True,
        "created": _now(),
        "currency": "usd",
        "customer": None,
        "description": None,
        "disputed": False,
        "failure_balance_transaction": None,
        "failure_code": None,
        "failure_message": None,
        "fraud_details": {},
        "livemode": False,
        "metadata": {},
        "on_behalf_of": None,
        "outcome": {
            "advice_code": None,
            "network_advice_code": None,
            "network_decline_code": None,
            "network_status": "approved_by_network",
            "reason": None,
            "seller_message": "Payment complete.",
            "type": "authorized",
        },
        "paid": True,
        "payment_intent": stripe_id("pi"),
        "payment_method": stripe_id("pm"),
        "payment_method_details": {"card": _card_details(amount_authorized=amount), "type": "card"},
        "receipt_email": None,
        "receipt_number": None,
        "receipt_url": f"https://pay.stripe.com/receipts/payment/{secrets.token_urlsafe(48)}",
        "refunded": False,
        "refunds": _list(f"/v1/charges/{charge_id}/refunds"),
        "review": None,
        "shipping": None,
        "source": None,
        "source_transfer": None,
        "statement_descriptor": None,
        "statement_descriptor_suffix": None,
        "status": "succeeded",
        "transfer_data": None,
        "transfer_group": None,
    }
    return _with(charge, fields)


def payment_intent_build(**fields) -> dict:
    """A $100.00 card PaymentIntent waiting for its payment method (as Checkout creates it)."""
    intent_id = fields.get("id") or stripe_id("pi")
    intent = {
        "id": intent_id,
        "object": "payment_intent",
        "amount": 10000,
        "amount_capturable": 0,
        "amount_details": {"tip": {}},
        "amount_received": 0,
        "application": None,
        "application_fee_amount": None,
        "automatic_payment_methods": None,
        "canceled_at": None,
        "cancellation_reason": None,
        "capture_method": "automatic_async",
        "client_secret": f"{intent_id}_secret_{secrets.token_urlsafe(18)}",
        "confirmation_method": "automatic",
        "created": _now(),
        "currency": "usd",
        "customer": None,
        "customer_account": None,
        "description": None,
        "excluded_payment_method_types": None,
        "last_payment_error": None,
        "latest_charge": None,
        "livemode": False,
        "managed_payments": None,
        "metadata": {},
        "next_action": None,
        "on_behalf_of": None,
        "payment_method": None,
        "payment_method_configuration_details": None,
        "payment_method_options": {
            "card": {"installments": None, "mandate_options": None, "network": None, "request_three_d_secure": "automatic"}
        },
        "payment_method_types": ["card"],
        "processing": None,
        "receipt_email": None,
        "review": None,
        "setup_future_usage": None,
        "shipping": None,
        "source": None,
        "statement_descriptor": None,
        "statement_descriptor_suffix": None,
        "status": "requires_payment_method",
        "transfer_data": None,
        "transfer_group": None,
    }
    return _with(intent, fields)


def refund_build(**fields) -> dict:
    """A succeeded $100.00 refund of a card payment, as the Stripe Dashboard makes one: no reason,
    no metadata. ``failure_reason`` (a failed or cancelled refund) and ``pending_reason`` are given
    only when set: Stripe leaves them out of refunds they do not concern."""
    optional = {key: fields.pop(key) for key in ("failure_reason", "pending_reason") if key in fields}
    refund = {
        "id": stripe_id("re"),
        "object": "refund",
        "amount": 10000,
        "balance_transaction": stripe_id("txn"),
        "charge": stripe_id("ch"),
        "created": _now(),
        "currency": "usd",
        "customer": None,
        "customer_account": None,
        "destination_details": {"card": {"type": "refund"}, "type": "card"},
        "metadata": {},
        "payment_intent": stripe_id("pi"),
        "payment_method": stripe_id("pm"),
        "reason": None,
        "receipt_number": None,
        "source_transfer_reversal": None,
        "status": "succeeded",
        "transfer_reversal": None,
    }
    _with(refund, fields)
    refund.update(optional)
    return refund


def dispute_build(**fields) -> dict:
    """A card dispute the clinic must answer, on a $100.00 charge, evidence due in 14 days."""
    now = _now()
    evidence_fields = [
        "access_activity_log", "billing_address", "cancellation_policy", "cancellation_policy_disclosure",
        "cancellation_rebuttal", "customer_communication", "customer_email_address", "customer_name",
        "customer_purchase_ip", "customer_signature", "duplicate_charge_documentation",
        "duplicate_charge_explanation", "duplicate_charge_id", "product_description", "receipt", "refund_policy",
        "refund_policy_disclosure", "refund_refusal_explanation", "service_date", "service_documentation",
        "shipping_address", "shipping_carrier", "shipping_date", "shipping_documentation",
        "shipping_tracking_number", "uncategorized_file", "uncategorized_text",
    ]  # fmt: skip
    dispute = {
        "id": stripe_id("dp"),
        "object": "dispute",
        "amount": 10000,
        "balance_transactions": [],
        "charge": stripe_id("ch"),
        "created": now,
        "currency": "usd",
        "enhanced_eligibility_types": [],
        "evidence": {**dict.fromkeys(evidence_fields), "enhanced_evidence": {}},
        "evidence_details": {
            "due_by": now + 14 * 24 * 3600,
            "enhanced_eligibility": {},
            "has_evidence": False,
            "past_due": False,
            "submission_count": 0,
        },
        "is_charge_refundable": False,
        "livemode": False,
        "metadata": {},
        "payment_intent": stripe_id("pi"),
        "payment_method_details": {
            "card": {"brand": "visa", "case_type": "chargeback", "network": "visa", "network_reason_code": "10.4"},
            "type": "card",
        },
        "reason": "fraudulent",
        "status": "needs_response",
    }
    return _with(dispute, fields)


# -- payouts and the balance ------------------------------------------------------------------------


def _midnight_utc(days_from_now: int) -> int:
    """A Stripe date (``arrival_date``, ``available_on``): Unix seconds at midnight UTC."""
    now = _now()
    return now - now % 86400 + days_from_now * 86400


def bank_account_build(**fields) -> dict:
    """The clinic's bank account that payouts go to (Stripe's test bank, ending 6789). No holder
    name: a company's account carries the company's, never a patient's, and tests need none."""
    bank_account = {
        "id": stripe_id("ba"),
        "object": "bank_account",
        "account_holder_name": None,
        "account_holder_type": "company",
        "account_type": None,
        "bank_name": "STRIPE TEST BANK",
        "country": "US",
        "currency": "usd",
        "customer": None,
        "fingerprint": secrets.token_urlsafe(12)[:16],
        "last4": "6789",
        "metadata": {},
        "routing_number": "110000000",
        "status": "new",
    }
    return _with(bank_account, fields)


def payout_build(**fields) -> dict:
    """A $500.00 standard automatic payout on the clinic's account, in transit to its bank account
    (named by id), arriving tomorrow; its own balance transaction by id, its trace id not known yet."""
    payout = {
        "id": stripe_id("po"),
        "object": "payout",
        "amount": 50000,
        "application_fee": None,
        "application_fee_amount": None,
        "arrival_date": _midnight_utc(1),
        "automatic": True,
        "balance_transaction": stripe_id("txn"),
        "created": _now(),
        "currency": "usd",
        "description": "STRIPE PAYOUT",
        "destination": stripe_id("ba"),
        "failure_balance_transaction": None,
        "failure_code": None,
        "failure_message": None,
        "livemode": False,
        "metadata": {},
        "method": "standard",
        "original_payout": None,
        "payout_method": None,
        "reconciliation_status": "not_applicable",
        "reversed_by": None,
        "source_type": "card",
        "statement_descriptor": None,
        "status": "in_transit",
        "trace_id": {"status": "pending", "value": None},
        "type": "bank_account",
    }
    return _with(payout, fields)


def balance_build(**fields) -> dict:
    """A connected account's balance: nothing available or pending, in US dollars from cards.
    ``available`` and ``pending`` are lists of ``{"amount", "currency", "source_types"}``."""
    balance = {
        "object": "balance",
        "available": [{"amount": 0, "currency": "usd", "source_types": {"card": 0}}],
        "connect_reserved": [{"amount": 0, "currency": "usd"}],
        "livemode": False,
        "pending": [{"amount": 0, "currency": "usd", "source_types": {"card": 0}}],
    }
    return _with(balance, fields)


# -- events ---------------------------------------------------------------------------------------


def event_build(**fields) -> dict:
    """An event as Stripe delivers it to a webhook endpoint. Give ``type`` and ``data`` (``{"object":
    …}``); ``account`` is added for events on a connected account (Connect endpoints)."""
    account = fields.pop("account", None)
    event = {
        "id": stripe_id("evt"),
        "object": "event",
        "api_version": None,
        "created": _now(),
        "data": {"object": payment_intent_build()},
        "livemode": False,
        "pending_webhooks": 1,
        "request": {"id": None, "idempotency_key": None},
        "type": "payment_intent.created",
    }
    _with(event, fields)
    if account:
        event["account"] = account
    return event
