"""Reads of cards on file for the pages: which organizations offer them, a patient's cards, and
one card looked up within the right scope (another organization's or patient's card is a 404)."""

from __future__ import annotations

from django.conf import settings
from django.db.models import QuerySet
from django.utils import timezone, translation
from django.utils.translation import gettext

from ehr_sync.enums import AppointmentStatus
from ehr_sync.models import Appointment, Patient
from org_profile.enums import PaymentGateway
from org_profile.models import Membership, Organization
from org_profile.selectors import scope_to_locations

from ..enums import SavedCardStatus
from ..models import SavedCard


# Shown to the patient next to the box they tick; recorded word for word with the card.
def card_on_file_consent_text(organization) -> str:
    """The consent, in the active language: the pay page shows it in the patient's language, and
    the text shown is the text recorded."""
    return gettext(
        "I authorize %(clinic)s to keep this card on file with its payment processor and to charge it for my "
        "copays and balances, including holding a copay before a visit and charging it at check-in. I can "
        "remove the card at any time from a payment link or by asking the clinic."
    ) % {"clinic": organization.display_name}


def card_on_file_consent_texts(organization) -> list[str]:
    """The consent as recorded when given in each of LumaPay's languages today: a card whose
    recorded consent is one of these agreed to holding a copay before a visit."""
    texts = []
    for code, _name in settings.LANGUAGES:
        with translation.override(code):
            texts.append(card_on_file_consent_text(organization))
    return texts


# The gateways that keep cards on file (``transactions.gateways.CARDS_ON_FILE_GATEWAYS``).
CARD_ON_FILE_GATEWAYS = frozenset({PaymentGateway.SANDBOX, PaymentGateway.STRIPE})


def card_on_file_offered(organization: Organization | None) -> bool:
    """Cards are kept on file by clinics whose payment processor keeps them: Stripe, and the Sandbox."""
    return organization is not None and organization.payment_gateway in CARD_ON_FILE_GATEWAYS


def saved_cards_active(*, organization: Organization, patient: Patient) -> QuerySet[SavedCard]:
    """The patient's cards on file that may be charged, newest first."""
    return SavedCard.objects.filter(organization=organization, patient=patient, status=SavedCardStatus.ACTIVE).order_by(
        "-consented_at", "-id"
    )


def saved_card_get(*, membership: Membership, pk: int) -> SavedCard | None:
    """A card on file of the member's organization; None for another organization's, or when the
    organization does not keep cards on file."""
    organization = membership.organization
    if not card_on_file_offered(organization):
        return None
    return SavedCard.objects.select_related("patient", "organization").filter(organization=organization, pk=pk).first()


def saved_card_of_patient(*, payment_request, pk: int) -> SavedCard | None:
    """One of the link's patient's cards on file (never another patient's); None otherwise."""
    if not card_on_file_offered(payment_request.organization):
        return None
    return (
        SavedCard.objects.select_related("organization", "patient")
        .filter(organization=payment_request.organization, patient=payment_request.patient_id, pk=pk)
        .first()
    )


def saved_card_of_setup(*, payment_request, setup_id: str) -> SavedCard | None:
    """The card the link's patient started saving through that gateway checkout."""
    if not setup_id:
        return None
    return SavedCard.objects.filter(
        organization=payment_request.organization, patient=payment_request.patient_id, gateway_setup_id=setup_id
    ).first()


def appointments_to_hold(*, membership: Membership, patient: Patient) -> QuerySet[Appointment]:
    """Upcoming booked appointments with a copay, at the member's locations: what a copay may be
    held for."""
    appointments = Appointment.objects.filter(
        organization=membership.organization,
        patient=patient,
        status=AppointmentStatus.BOOKED,
        starts_at__gte=timezone.now(),
        copay_cents__gt=0,
    ).select_related("location")
    return scope_to_locations(appointments, membership=membership).order_by("starts_at", "id")
