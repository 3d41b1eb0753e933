import io
import unicodedata

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db.models import Count, Sum

from ehr_sync.models import Appointment, Balance, Patient
from org_profile.enums import Role
from org_profile.models import Location, Membership, Organization, User
from transactions.enums import (
    PaymentRequestStatus,
    RefundStatus,
    TransactionEventKind as Kind,
    TransactionStatus,
)
from transactions.models import (
    PaymentRequest,
    PaymentRequestDelivery,
    Refund,
    SandboxCharge,
    SandboxCheckoutSession,
    SandboxRefund,
    Transaction,
    TransactionEvent,
)
from transactions.services.ledger import transaction_recalculate
from transactions.services.refunds import refund_create

pytestmark = pytest.mark.django_db

MODELS = [
    Organization, Location, User, Membership, Patient, Appointment, Balance, PaymentRequest,
    PaymentRequestDelivery, Transaction, TransactionEvent, Refund, SandboxCheckoutSession, SandboxCharge, SandboxRefund,
]


@pytest.fixture(autouse=True)
def _development(settings):
    settings.DEBUG = True
    # Three demo users: hash their password quickly in tests.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def _seed() -> str:
    out = io.StringIO()
    call_command("seed_demo_clinic", stdout=out)
    return out.getvalue()


def _counts():
    return {model.__name__: model.objects.count() for model in MODELS}


def test_seeding_twice_changes_nothing():
    first_output = _seed()
    counts = _counts()
    statuses = list(Transaction.objects.order_by("pk").values_list("pk", "status", "charged_cents", "refunded_cents"))

    second_output = _seed()

    assert _counts() == counts
    assert list(Transaction.objects.order_by("pk").values_list("pk", "status", "charged_cents", "refunded_cents")) == statuses
    assert first_output.startswith("Created Demo Family Clinic (slug demo-clinic)")
    assert second_output.startswith("Already seeded: Demo Family Clinic (slug demo-clinic)")
    assert counts["Organization"] == 1
    assert counts["Location"] == 2
    assert counts["Patient"] == 200
    assert 250 <= counts["Transaction"] <= 400
    for output in (first_output, second_output):
        assert "admin@demo.lumapay.test" in output
        assert "manager@demo.lumapay.test" in output
        assert "staff@demo.lumapay.test (Downtown only)" in output
        assert "password for each:  demo-clinic-2026" in output


def test_the_demo_clinic_has_every_status_and_role():
    _seed()

    organization = Organization.objects.get(slug="demo-clinic")
    assert organization.name == "Demo Family Clinic"
    assert organization.address_lines and organization.support_phone
    assert sorted(Location.objects.values_list("name", flat=True)) == ["Downtown", "Northside"]
    roles = {m.user.email: (m.role, sorted(m.locations.values_list("name", flat=True))) for m in Membership.objects.all()}
    assert roles == {
        "admin@demo.lumapay.test": (Role.ADMINISTRATOR, []),
        "manager@demo.lumapay.test": (Role.MANAGER, []),
        "staff@demo.lumapay.test": (Role.STAFF, ["Downtown"]),
    }
    assert User.objects.get(email="staff@demo.lumapay.test").check_password("demo-clinic-2026")

    transaction_statuses = dict(Transaction.objects.values_list("status").annotate(n=Count("id")))
    # Every status a Sandbox payment can reach (holds and disputes come from Stripe only).
    sandbox_statuses = set(TransactionStatus.values) - {
        TransactionStatus.AUTHORIZED,
        TransactionStatus.RELEASED,
        TransactionStatus.DISPUTED,
        TransactionStatus.DISPUTE_LOST,
    }
    assert set(transaction_statuses) == sandbox_statuses
    assert all(count >= 5 for count in transaction_statuses.values())
    request_statuses = dict(PaymentRequest.objects.values_list("status").annotate(n=Count("id")))
    assert set(request_statuses) == set(PaymentRequestStatus.values)
    assert all(count >= 10 for count in request_statuses.values())
    assert set(Refund.objects.values_list("status", flat=True)) == {RefundStatus.SUCCEEDED, RefundStatus.FAILED}

    patients = Patient.objects.all()
    assert patients.filter(preferred_language="es").count() >= 10
    assert patients.exclude(email="").count() > 150
    assert patients.filter(sms_consent=True).count() > 80
    assert patients.filter(email="", sms_consent=False).exists()
    assert Appointment.objects.filter(status="booked").exists() and Appointment.objects.exclude(status="booked").exists()
    assert Balance.objects.filter(amount_due_cents__gt=0).exists()

    # Spread over the last 90 days, and never in the future.
    from django.utils import timezone

    oldest = Transaction.objects.earliest("created_at").created_at
    newest = Transaction.objects.latest("created_at").created_at
    assert (timezone.now() - oldest).days >= 60
    assert newest <= timezone.now()


def test_cached_totals_equal_the_ledger_and_the_sandbox_books():
    _seed()

    for transaction in Transaction.objects.all():
        sums = dict(
            TransactionEvent.objects.filter(transaction=transaction)
            .values_list("kind")
            .annotate(total=Sum("amount_cents"))
        )
        assert transaction.charged_cents == sums.get(Kind.CHARGE_SUCCEEDED, 0)
        assert transaction.refunded_cents == sums.get(Kind.REFUND_SUCCEEDED, 0)
        before = (transaction.status, transaction.charged_cents, transaction.refunded_cents, transaction.last_error)
        transaction_recalculate(transaction=transaction)
        assert (transaction.status, transaction.charged_cents, transaction.refunded_cents, transaction.last_error) == before

        session = SandboxCheckoutSession.objects.get(id=transaction.gateway_checkout_id)
        assert session.amount_cents == transaction.amount_cents
        assert session.client_reference == str(transaction.pk)
        if transaction.charged_cents:
            charge = SandboxCharge.objects.get(id=transaction.gateway_charge_id)
            assert charge.is_paid
            assert charge.amount_refunded_cents == transaction.refunded_cents
            assert (charge.card_brand, charge.card_last4) == (transaction.card_brand, transaction.card_last4)
            assert transaction.payment_request.status == PaymentRequestStatus.PAID
        else:
            assert transaction.payment_request.status in (PaymentRequestStatus.OPEN, PaymentRequestStatus.EXPIRED)
    for refund in Refund.objects.all():
        assert SandboxRefund.objects.get(id=refund.gateway_refund_id).idempotency_key == str(refund.idempotency_key)


def test_a_manager_can_refund_a_seeded_payment_through_the_sandbox():
    _seed()
    manager = User.objects.get(email="manager@demo.lumapay.test")
    organization = Organization.objects.get(slug="demo-clinic")
    payment = Transaction.objects.filter(status=TransactionStatus.PARTIALLY_REFUNDED).order_by("pk").first()
    remaining = payment.charged_cents - payment.refunded_cents

    refund = refund_create(
        organization=organization, actor=manager, transaction=payment, amount_cents=remaining, reason="Visit cancelled"
    )

    assert refund.status == RefundStatus.SUCCEEDED
    payment.refresh_from_db()
    assert (payment.status, payment.refunded_cents) == (TransactionStatus.REFUNDED, payment.charged_cents)
    assert SandboxCharge.objects.get(id=payment.gateway_charge_id).amount_refunded_cents == payment.charged_cents


def test_seeding_refuses_to_run_without_debug(settings):
    settings.DEBUG = False

    with pytest.raises(CommandError) as error:
        call_command("seed_demo_clinic", stdout=io.StringIO())

    assert "runs only with DEBUG=true" in str(error.value)
    assert Organization.objects.filter(slug="demo-clinic").count() == 0


def test_an_accented_last_name_keeps_its_letters_in_the_patients_e_mail():
    _seed()

    # Then "García" is "garcia" in an address, never "garca"
    accented = Patient.objects.filter(last_name__regex=r"[áéíóúñÁÉÍÓÚÑ]").exclude(email="")
    assert accented.exists()
    for patient in accented:
        local_part = patient.email.split("@")[0]
        expected = unicodedata.normalize("NFKD", patient.last_name).encode("ascii", "ignore").decode().lower()
        assert expected in local_part, (patient.last_name, patient.email)
        assert len(expected) == len(patient.last_name)


def test_the_demo_administrator_and_manager_sign_in_with_the_documented_key_and_backup_codes(client):
    from django.test import Client
    from django_otp import DEVICE_ID_SESSION_KEY

    from org_profile.demo import DEMO_BACKUP_CODES, DEMO_TOTP_SECRET, PASSWORD

    output = _seed()

    assert DEMO_TOTP_SECRET in output and "demo-code-0001 to demo-code-0010" in output
    assert not User.objects.get(email="staff@demo.lumapay.test").totpdevice_set.exists()
    for email, code in (("admin@demo.lumapay.test", None), ("manager@demo.lumapay.test", DEMO_BACKUP_CODES[0])):
        browser = Client()
        signed_in = browser.post("/accounts/login/", {"username": email, "password": PASSWORD})
        assert signed_in.url.startswith("/accounts/login/code/")
        if code is None:
            out = io.StringIO()
            call_command("demo_sign_in_code", stdout=out)
            code = out.getvalue().split()[0]
        assert browser.post("/accounts/login/code/", {"code": code}).status_code == 302
        assert DEVICE_ID_SESSION_KEY in browser.session
