"""The patient's e-mailed receipt, sent once per paid transaction, in the patient's language, with
the receipt PDF attached."""

from __future__ import annotations

import logging

from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.db import transaction as db_transaction
from django.template.loader import render_to_string
from django.utils import translation

from lumapay.audit import audit_event_record
from lumapay.enums import AuditAction
from lumapay.models import ActorType, AuditEvent

from ..enums import RefundStatus
from ..locks import transaction_lock
from ..selectors.ledger import organization_zone

logger = logging.getLogger(__name__)



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


def receipt_email_send(*, transaction_id: int) -> bool:
    """E-mail the receipt for a paid transaction, with its PDF, once. Returns True when this call sent it.

    The "receipt.sent" audit event is the record that it went out: when one exists nothing is
    done. A patient without an e-mail address gets an audit note ("receipt.skipped") instead.
    Holds the transaction's lock while sending, so two deliveries of the task cannot both send.
    """
    from .receipt_documents import receipt_filename, receipt_pdf

    with db_transaction.atomic():
        transaction = transaction_lock(transaction_id=transaction_id)
        if transaction.charged_cents <= 0:
            logger.info("transaction %s is not paid; no receipt", transaction.pk)
            return False
        done = AuditEvent.objects.filter(
            transaction=transaction, action__in=[AuditAction.RECEIPT_SENT, AuditAction.RECEIPT_SKIPPED]
        ).exists()
        if done:
            return False
        patient = transaction.patient
        language = patient.preferred_language or settings.LANGUAGE_CODE
        audit = {
            "organization": transaction.organization,
            "actor_type": ActorType.SYSTEM,
            "patient": patient,
            "payment_request": transaction.payment_request,
            "transaction": transaction,
        }
        if not patient.email:
            audit_event_record(action=AuditAction.RECEIPT_SKIPPED, changes={"reason": "no_email"}, **audit)
            return False

        with translation.override(language):
            context = receipt_context(transaction=transaction)
            context["patient_first_name"] = patient.first_name
            subject = " ".join(render_to_string("transactions/emails/receipt.subject.txt", context).split())
            text_body = render_to_string("transactions/emails/receipt.txt", context)
            html_body = render_to_string("transactions/emails/receipt.html", context)
            filename = receipt_filename(transaction=transaction)
        pdf = receipt_pdf(transaction=transaction, language=language)
        message = EmailMultiAlternatives(
            subject=subject,
            body=text_body,
            from_email=settings.DEFAULT_FROM_EMAIL,
            to=[patient.email],
            reply_to=[transaction.organization.support_email] if transaction.organization.support_email else None,
        )
        message.attach_alternative(html_body, "text/html")
        message.attach(filename, pdf, "application/pdf")
        audit_event_record(action=AuditAction.RECEIPT_SENT, changes={"channel": "email", "language": language}, **audit)
        # Sent last: if it raises, the audit row rolls back and a retry sends it.
        message.send()
        logger.info("transaction %s: receipt e-mailed", transaction.pk)
        return True
