"""The receipt as a PDF document, made with WeasyPrint from one HTML template.

The same document serves staff (download or print from the transaction's page), the patient (from
the confirmation page) and the receipt e-mail (attached). It is the patient's document: it names
the patient and what was paid, never the visit's reason, the request's note or a diagnosis.

``receipt_pdf`` is ``receipt_html`` plus WeasyPrint's own work and nothing else (no stylesheet or
font fetched, no font configuration built beyond WeasyPrint's default), so it costs about what bare
WeasyPrint costs on the same HTML (the benchmark compares the two).
"""

from __future__ import annotations

from django.conf import settings
from django.template.loader import render_to_string
from django.utils import translation
from django.utils.translation import gettext as _

from lumapay.audit import audit_event_record
from lumapay.enums import AuditAction
from lumapay.errors import ApplicationError
from lumapay.models import ActorType

from ..models import Transaction
from .receipts import receipt_context

_LANGUAGE_CODES = {code for code, _name in settings.LANGUAGES}


class ReceiptUnavailable(ApplicationError):
    """Nothing was charged on this transaction, so it has no receipt."""


def _language(transaction: Transaction, language: str | None) -> str:
    if language in _LANGUAGE_CODES:
        return language
    preferred = transaction.patient.preferred_language
    return preferred if preferred in _LANGUAGE_CODES else settings.LANGUAGE_CODE


def receipt_html(*, transaction: Transaction, language: str | None = None) -> str:
    """The receipt as HTML, in ``language`` (the patient's preferred language unless told)."""
    language = _language(transaction, language)
    with translation.override(language):
        context = receipt_context(transaction=transaction)
        context["language_code"] = language
        return render_to_string("transactions/receipts/receipt_pdf.html", context)


def receipt_pdf(*, transaction: Transaction, language: str | None = None) -> bytes:
    """The receipt as a PDF (letter size), in ``language`` (the patient's preferred one unless told)."""
    # Imported on first use: WeasyPrint parses its own stylesheets on import, which every
    # management command and worker would otherwise pay for (and log) at start-up.
    from weasyprint import HTML

    return HTML(string=receipt_html(transaction=transaction, language=language)).write_pdf()


def receipt_filename(*, transaction: Transaction) -> str:
    """The file name, in the active language: ``receipt-123.pdf``."""
    return _("receipt-%(number)s.pdf") % {"number": transaction.pk}


def receipt_download(
    *, organization, actor, transaction: Transaction, ip_address: str | None = None, language: str | None = None
) -> bytes:
    """The receipt PDF for someone who asked to download it, recorded as a PHI access.

    ``actor`` is the staff user, or None for the patient through their verified payment link. The
    caller has already checked that they may see the transaction. Raises ``ReceiptUnavailable``
    when nothing was charged (nothing is recorded then).
    """
    if transaction.organization_id != organization.pk:
        raise ReceiptUnavailable("This transaction does not exist.")
    if transaction.charged_cents <= 0:
        raise ReceiptUnavailable("This payment was not completed, so it has no receipt.")
    pdf = receipt_pdf(transaction=transaction, language=language)
    audit_event_record(
        organization=organization,
        action=AuditAction.RECEIPT_DOWNLOADED,
        actor_type=ActorType.STAFF if actor is not None else ActorType.PATIENT,
        actor_user=actor,
        patient=transaction.patient,
        payment_request=transaction.payment_request,
        transaction=transaction,
        changes={"language": _language(transaction, language)},
        ip_address=ip_address,
    )
    return pdf
