"""What a receipt says, for the e-mail (owed and sent through ``patient_messages``), the PDF and
the confirmation page."""

from __future__ import annotations

from ..enums import RefundStatus
from ..selectors.ledger import organization_zone


def receipt_context(*, transaction) -> dict:
    """What a receipt shows; used by the e-mail, the PDF and the confirmation page so all say the same.

    Never the visit's reason, the request's note or anything clinical: only what was paid, when,
    how and to whom. Reads the transaction's organization, location and patient, and its refunds
    only when something was refunded.
    """
    organization = transaction.organization
    paid_at = transaction.paid_at or transaction.created_at
    amount_cents = transaction.charged_cents or transaction.amount_cents
    refunds = []
    if transaction.refunded_cents:
        refunds = list(transaction.refunds.filter(status=RefundStatus.SUCCEEDED).order_by("created_at", "id"))
    return {
        "transaction": transaction,
        "organization": organization,
        "clinic_name": organization.display_name,
        "clinic_address_lines": organization.address_lines,
        "clinic_phone": organization.support_phone or transaction.location.phone,
        "clinic_email": organization.support_email,
        "clinic_website": organization.website,
        # The logo as a data: URI: WeasyPrint and the confirmation page show it without fetching anything.
        "clinic_logo": organization.logo_data_uri,
        # Templates show it with {% timezone clinic_timezone %}: the clinic's time, not the server's.
        "paid_at": paid_at,
        "clinic_timezone": organization_zone(organization),
        "amount_cents": amount_cents,
        "currency": transaction.currency,
        "status_label": transaction.get_status_display(),
        "vendor_label": transaction.get_vendor_display(),
        "kind_label": transaction.get_kind_display(),
        "billing_item": transaction.billing_item,
        "location": transaction.location,
        "patient_name": transaction.patient.full_name,
        "card_brand": transaction.card_brand,
        "card_last4": transaction.card_last4,
        "authorization_code": transaction.authorization_code,
        "reference": transaction.gateway_charge_id,
        "transaction_id": transaction.pk,
        "refunds": refunds,
        "refunded_cents": transaction.refunded_cents,
        "net_paid_cents": amount_cents - transaction.refunded_cents,
    }
