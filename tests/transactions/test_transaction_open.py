"""transaction_open: the one place a transaction is opened, from a payment request or for a card on file."""

import pytest

from lumapay.errors import ApplicationError
from transactions.enums import PaymentRequestKind, TransactionStatus
from transactions.models import Transaction
from transactions.services.transaction_open import transaction_open

from ..factories import LocationFactory, PatientFactory, PaymentRequestFactory

pytestmark = pytest.mark.django_db


def test_a_transaction_opened_from_a_request_pays_exactly_what_was_asked(organization, location, patient):
    # given a balance request of $123.45 at the Downtown Clinic
    payment_request = PaymentRequestFactory(
        organization=organization, location=location, patient=patient, kind=PaymentRequestKind.BALANCE,
        billing_item="Statement balance", amount_cents=12345,
    )

    # when a transaction is opened for it
    transaction = transaction_open(organization=organization, payment_request=payment_request, vendor="sandbox")

    # then it is pending and carries the request's who, where, what and how much
    stored = Transaction.objects.get()
    assert stored == transaction
    assert (
        stored.payment_request, stored.patient, stored.location, stored.kind, stored.billing_item,
        stored.amount_cents, stored.currency, stored.vendor, stored.status, stored.charged_cents,
    ) == (
        payment_request, patient, location, PaymentRequestKind.BALANCE, "Statement balance",
        12345, "usd", "sandbox", TransactionStatus.PENDING, 0,
    )


def test_a_transaction_never_mixes_organizations(organization, other_organization, location, patient):
    # given a request of another organization, and a patient and a location of another organization
    foreign_request = PaymentRequestFactory(organization=other_organization)
    foreign_patient = PatientFactory(organization=other_organization)
    foreign_location = LocationFactory(organization=other_organization)

    # when transactions are opened with them in this organization, then each is refused and nothing is written
    with pytest.raises(ApplicationError, match="This payment request does not exist."):
        transaction_open(organization=organization, payment_request=foreign_request, vendor="sandbox")
    for other_patient, other_location in ((foreign_patient, location), (patient, foreign_location)):
        with pytest.raises(ApplicationError, match="belongs to another organization"):
            transaction_open(
                organization=organization, patient=other_patient, location=other_location,
                kind=PaymentRequestKind.OTHER, billing_item="Records fee", amount_cents=2500, vendor="sandbox",
            )
    assert Transaction.objects.count() == 0
