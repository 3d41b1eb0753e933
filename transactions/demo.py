"""The demo clinic's payments for `make dev`: payment requests in every status and a few hundred
transactions over the last 90 days in every status, each with its ledger events and the Sandbox
processor's matching books (so a manager can refund a seeded payment through the Sandbox).

Called by ``manage.py seed_demo_clinic`` (lumapay/management/commands/) after the tenancy
(org_profile/demo.py) and the patients (ehr_sync/demo.py); every draw comes from the seed's one
``random.Random``, so the demo is the same each time.
"""

from __future__ import annotations

import random
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.db import connection
from django.utils import translation

from ehr_sync.demo import COPAYS, DAYS
from ehr_sync.models import Patient
from lumapay.models import ActorType
from org_profile.enums import PaymentGateway, Role
from org_profile.fees import platform_fee_cents
from org_profile.models import Location, Organization, User

from .enums import (
    DeliveryChannel,
    DeliveryStatus,
    PaymentRequestKind,
    PaymentRequestStatus,
    RefundStatus,
    TransactionEventKind as Kind,
    TransactionStatus,
)
from .gateways.base import ChargeFact, RefundFact
from .models import (
    PaymentRequest,
    PaymentRequestDelivery,
    Refund,
    SandboxCharge,
    SandboxCheckoutSession,
    SandboxRefund,
    SavedCard,
    Transaction,
    TransactionEvent,
)
from .sandbox.enums import SandboxSessionStatus
from .sandbox import processor as sandbox_processor
from .sandbox.processor import DECLINES, SESSION_LIFETIME, TEST_CARDS
from .services.ledger import transaction_recalculate
from .services.ledger_facts import charge_event_key, refund_event_key
from .services.saved_cards import card_on_file_consent_text, saved_card_setup_complete
from .services.transaction_open import transaction_build

TRANSACTION_COUNT = 300
LINK_TTL = timedelta(days=30)

BILLING_ITEMS = {
    PaymentRequestKind.COPAY: ["Office visit copay", "Specialist visit copay", "Telehealth visit copay", "Urgent care copay"],
    PaymentRequestKind.BALANCE: ["Statement balance", "Lab work balance", "Imaging balance", "Physical therapy balance"],
    PaymentRequestKind.OTHER: ["Medical records fee", "Sports physical", "Flu vaccination", "Missed appointment fee"],
}
REFUND_REASONS = [
    "Copay charged twice",
    "Insurance paid the visit in full",
    "Visit cancelled by the clinic",
    "Patient overpaid their balance",
    "Billing error corrected",
]
PAYING_CARDS = ["4242424242424242", "5555555555554444", "378282246310005", "6011111111111117"]
REFUND_FAILS_CARD = "4000000000005126"
DECLINED_CARDS = {"4000000000000002": "declined", "4000000000009995": "insufficient_funds"}
# How the few hundred transactions are spread over the statuses.
STATUS_WEIGHTS = [
    (TransactionStatus.SUCCEEDED, 58),
    (TransactionStatus.PARTIALLY_REFUNDED, 9),
    (TransactionStatus.REFUNDED, 9),
    (TransactionStatus.FAILED, 14),
    (TransactionStatus.PENDING, 10),
]
# Payment requests without a transaction, per status.
UNPAID_REQUESTS = {PaymentRequestStatus.OPEN: 18, PaymentRequestStatus.CANCELLED: 12, PaymentRequestStatus.EXPIRED: 15}


@dataclass
class Plan:
    """What one seeded payment is made of, before it is written."""

    status: str
    at: datetime
    card: str = ""
    refunds: list[int] = field(default_factory=list)
    refund_fails: bool = False


def demo_payments_build(
    *, organization: Organization, locations: list[Location], users: dict[str, User], rng: random.Random, now: datetime
) -> None:
    """Requests and transactions, unless the organization has either already."""
    if (
        PaymentRequest.objects.filter(organization=organization).exists()
        or Transaction.objects.filter(organization=organization).exists()
    ):
        return
    _DemoPayments(rng=rng, now=now).build(organization, locations, users)


def demo_payments_summary(organization: Organization) -> list[str]:
    transactions = Counter(Transaction.objects.filter(organization=organization).values_list("status", flat=True))
    requests = Counter(PaymentRequest.objects.filter(organization=organization).values_list("status", flat=True))
    return [
        f"  {sum(requests.values())} payment requests: "
        + ", ".join(f"{requests[s]} {s}" for s in PaymentRequestStatus.values),
        f"  {sum(transactions.values())} transactions: "
        + ", ".join(f"{transactions[s]} {s.replace('_', ' ')}" for s in TransactionStatus.values),
    ]


class _DemoPayments:
    def __init__(self, *, rng: random.Random, now: datetime) -> None:
        self.rng = rng
        self.now = now

    # -- payments ----------------------------------------------------------------------------------

    def build(self, organization, locations, users) -> None:
        rng = self.rng
        patients = Patient.objects.filter(organization=organization).order_by("id")
        reachable = [patient for patient in patients if patient.email or patient.can_receive_sms]
        staff_actors = [users[Role.STAFF], users[Role.MANAGER], users[Role.ADMINISTRATOR]]
        refunders = [users[Role.MANAGER], users[Role.ADMINISTRATOR]]

        plans = [self._plan() for _ in range(TRANSACTION_COUNT)]
        plans.sort(key=lambda plan: plan.at)

        # One payment request per transaction (the request is paid when its transaction is), plus
        # requests nobody paid yet, cancelled ones and expired ones.
        requests: list[PaymentRequest] = []
        request_times: list[datetime] = []
        for plan in plans:
            requests.append(self._request(organization, rng.choice(reachable), rng.choice(locations), staff_actors))
            request_times.append(plan.at - timedelta(days=rng.randrange(0, 4), minutes=rng.randrange(5, 600)))
        for status, count in UNPAID_REQUESTS.items():
            for _ in range(count):
                if status == PaymentRequestStatus.EXPIRED:
                    at = self.now - timedelta(days=rng.randrange(31, DAYS), minutes=rng.randrange(0, 600))
                else:
                    at = self.now - timedelta(days=rng.randrange(0, 29), minutes=rng.randrange(0, 600))
                request = self._request(organization, rng.choice(reachable), rng.choice(locations), staff_actors)
                request.status = status
                if status == PaymentRequestStatus.CANCELLED:
                    request.cancelled_by = rng.choice(staff_actors)
                requests.append(request)
                request_times.append(at)

        for request, at in zip(requests, request_times):
            request.expires_at = at + LINK_TTL
            request.last_sent_at = at
            if request.status == PaymentRequestStatus.CANCELLED:
                request.cancelled_at = at + timedelta(days=rng.randrange(1, 5))
        for request, plan in zip(requests, plans):
            if plan.status in (TransactionStatus.PENDING, TransactionStatus.FAILED):
                expired = request.expires_at <= self.now
                request.status = PaymentRequestStatus.EXPIRED if expired else PaymentRequestStatus.OPEN
            else:
                request.status = PaymentRequestStatus.PAID
                request.paid_at = plan.at + timedelta(minutes=3)
        requests = PaymentRequest.objects.bulk_create(requests)
        self._backdate(PaymentRequest, list(zip(requests, request_times)))
        self._deliveries(requests)

        transactions = [
            transaction_build(organization=organization, payment_request=request, vendor=PaymentGateway.SANDBOX)
            for request in requests[: len(plans)]
        ]
        self._books_and_ledger(organization, transactions, plans, refunders)

    def _plan(self) -> Plan:
        rng = self.rng
        status = rng.choices([s for s, _ in STATUS_WEIGHTS], weights=[w for _, w in STATUS_WEIGHTS])[0]
        # Days are drawn so that more payments are recent, as in a clinic that has been growing.
        at = self.now - timedelta(days=DAYS * rng.random() ** 1.3, minutes=rng.randrange(10, 70))
        if status == TransactionStatus.FAILED:
            return Plan(status=status, at=at, card=rng.choice(list(DECLINED_CARDS)))
        if status == TransactionStatus.PENDING:
            return Plan(status=status, at=at)
        refund_fails = status == TransactionStatus.SUCCEEDED and rng.random() < 0.04
        card = REFUND_FAILS_CARD if refund_fails else rng.choice(PAYING_CARDS)
        return Plan(status=status, at=at, card=card, refund_fails=refund_fails)

    def _request(self, organization, patient, location, staff_actors) -> PaymentRequest:
        rng = self.rng
        kind = rng.choices(list(BILLING_ITEMS), weights=[55, 35, 10])[0]
        if kind == PaymentRequestKind.COPAY:
            amount = rng.choice(COPAYS)
        elif kind == PaymentRequestKind.BALANCE:
            amount = rng.randrange(40_00, 650_00, 25)
        else:
            amount = rng.choice([25_00, 35_00, 60_00, 75_00])
        return PaymentRequest(
            organization=organization,
            patient=patient,
            location=location,
            kind=kind,
            billing_item=rng.choice(BILLING_ITEMS[kind]),
            amount_cents=amount,
            created_by=rng.choice(staff_actors),
            expires_at=self.now,  # set with the request's time
        )

    def _deliveries(self, requests) -> None:
        deliveries = []
        for request in requests:
            patient = request.patient
            channels = []
            if patient.email:
                channels.append((DeliveryChannel.EMAIL, patient.email))
            if patient.can_receive_sms:
                channels.append((DeliveryChannel.SMS, patient.mobile_phone))
            for channel, destination in channels:
                deliveries.append(
                    PaymentRequestDelivery(
                        organization_id=request.organization_id,
                        payment_request=request,
                        channel=channel,
                        destination=destination,
                        status=DeliveryStatus.SENT,
                        provider_message_id=f"demo-{request.pk}-{channel}",
                        sent_at=request.created_at + timedelta(seconds=4),
                    )
                )
        deliveries = PaymentRequestDelivery.objects.bulk_create(deliveries)
        self._backdate(PaymentRequestDelivery, [(d, d.sent_at - timedelta(seconds=4)) for d in deliveries])

    def _books_and_ledger(self, organization, transactions, plans, refunders) -> None:
        """The Sandbox's side (sessions, charges, refunds) and ours (transactions, ledger events,
        refunds). ``transactions`` are not saved yet: their gateway fields are filled in first."""
        rng = self.rng
        sessions, charges, sandbox_refunds, refunds = [], [], [], []
        events: list[tuple[TransactionEvent, datetime]] = []

        def event(transaction, kind, amount, key, at, **extra):
            events.append(
                (
                    TransactionEvent(
                        organization=organization,
                        transaction=transaction,
                        kind=kind,
                        amount_cents=amount,
                        currency=transaction.currency,
                        idempotency_key=key,
                        **extra,
                    ),
                    at,
                )
            )

        refund_plans = []
        for transaction, plan in zip(transactions, plans):
            session = SandboxCheckoutSession(
                id=self._id("cs"),
                organization=organization,
                amount_cents=transaction.amount_cents,
                currency=transaction.currency,
                client_reference="",  # the transaction's id, once it has one
                merchant_name=organization.display_name,
                application_fee_cents=platform_fee_cents(organization, transaction.amount_cents),
                success_url=f"{settings.SITE_URL}/pay/done",
                cancel_url=f"{settings.SITE_URL}/pay/cancelled",
                expires_at=plan.at + SESSION_LIFETIME,
            )
            sessions.append((session, plan.at))
            transaction.gateway_checkout_id = session.id
            event(
                transaction, Kind.CHARGE_REQUESTED, transaction.amount_cents, f"checkout:{session.id}", plan.at,
                actor_type=ActorType.PATIENT, gateway_reference=session.id,
            )
            if plan.status == TransactionStatus.PENDING:
                session.status = (
                    SandboxSessionStatus.EXPIRED if session.expires_at <= self.now else SandboxSessionStatus.OPEN
                )
                continue

            card = TEST_CARDS[plan.card]
            paid_at = plan.at + timedelta(minutes=2, seconds=rng.randrange(0, 60))
            decline = DECLINES.get(DECLINED_CARDS.get(plan.card, ""))
            charge = SandboxCharge(
                id=self._id("ch"),
                session=session,
                amount_cents=transaction.amount_cents,
                currency=transaction.currency,
                is_paid=decline is None,
                failure_code=decline[0] if decline else "",
                failure_message=decline[1] if decline else "",
                card_brand=card.brand,
                card_last4=plan.card[-4:],
                authorization_code="" if decline else f"{rng.randrange(0, 10**6):06d}",
            )
            charges.append((charge, paid_at))
            fact = ChargeFact(
                status="failed" if decline else "succeeded",
                charge_id=charge.id,
                amount_cents=0 if decline else charge.amount_cents,
                failure_message=charge.failure_message,
            )
            transaction.card_brand, transaction.card_last4 = charge.card_brand, charge.card_last4
            if decline:
                session.status = SandboxSessionStatus.EXPIRED if session.expires_at <= self.now else SandboxSessionStatus.OPEN
                event(
                    transaction, Kind.CHARGE_FAILED, 0, charge_event_key(fact), paid_at,
                    actor_type=ActorType.GATEWAY, gateway_reference=charge.id, message=charge.failure_message,
                )
                continue
            session.status = SandboxSessionStatus.COMPLETE
            transaction.gateway_charge_id = charge.id
            transaction.authorization_code = charge.authorization_code
            transaction.platform_fee_cents = session.application_fee_cents
            transaction.paid_at = paid_at
            event(
                transaction, Kind.CHARGE_SUCCEEDED, charge.amount_cents, charge_event_key(fact), paid_at,
                actor_type=ActorType.GATEWAY, gateway_reference=charge.id,
            )
            for amount, succeeded in self._refund_amounts(transaction.amount_cents, plan):
                refund_at = paid_at + timedelta(days=rng.randrange(1, 12), minutes=rng.randrange(0, 480))
                if refund_at > self.now:
                    # Too recent a payment for that: refunded since, some time before now (not
                    # all at this very moment, which would leave the Sandbox's balance negative).
                    refund_at = paid_at + (self.now - paid_at) * rng.random()
                refund_plans.append((transaction, charge, amount, succeeded, refund_at))
                if succeeded:
                    charge.amount_refunded_cents += amount

        Transaction.objects.bulk_create(transactions)
        for (session, _), transaction in zip(sessions, transactions):
            session.client_reference = str(transaction.pk)
        SandboxCheckoutSession.objects.bulk_create([session for session, _ in sessions])
        SandboxCharge.objects.bulk_create([charge for charge, _ in charges])

        for transaction, charge, amount, succeeded, refund_at in refund_plans:
            refund = Refund(
                organization=organization,
                transaction=transaction,
                amount_cents=amount,
                currency=transaction.currency,
                reason=rng.choice(REFUND_REASONS),
                status=RefundStatus.SUCCEEDED if succeeded else RefundStatus.FAILED,
                idempotency_key=uuid.UUID(int=rng.getrandbits(128), version=4),
                gateway_refund_id=self._id("re"),
                failure_message="" if succeeded else "The card issuer declined the refund. Refund the patient another way.",
                requested_by=rng.choice(refunders),
            )
            refunds.append((refund, refund_at))
            sandbox_refunds.append(
                SandboxRefund(
                    id=refund.gateway_refund_id,
                    charge=charge,
                    amount_cents=amount,
                    idempotency_key=str(refund.idempotency_key),
                    status="succeeded" if succeeded else "failed",
                    failure_message=refund.failure_message,
                )
            )
        Refund.objects.bulk_create([refund for refund, _ in refunds])
        SandboxRefund.objects.bulk_create(sandbox_refunds)

        for refund, at in refunds:
            event(
                refund.transaction, Kind.REFUND_REQUESTED, refund.amount_cents, f"refund_requested:{refund.pk}", at,
                actor_type=ActorType.STAFF, actor_user=refund.requested_by, refund=refund, message=refund.reason,
            )
            fact = RefundFact(
                status="succeeded" if refund.status == RefundStatus.SUCCEEDED else "failed",
                gateway_refund_id=refund.gateway_refund_id,
                amount_cents=refund.amount_cents,
            )
            event(
                refund.transaction,
                Kind.REFUND_SUCCEEDED if refund.status == RefundStatus.SUCCEEDED else Kind.REFUND_FAILED,
                refund.amount_cents, refund_event_key(fact, refund=refund), at + timedelta(seconds=2),
                actor_type=ActorType.GATEWAY, refund=refund, gateway_reference=refund.gateway_refund_id,
                message=refund.failure_message,
            )
        TransactionEvent.objects.bulk_create([row for row, _ in events], batch_size=1000)

        # auto_now_add stamped everything "now": move each row to its moment in the last 90 days.
        self._backdate(Transaction, [(t, p.at) for t, p in zip(transactions, plans)])
        self._backdate(SandboxCheckoutSession, sessions)
        self._backdate(SandboxCharge, charges)
        self._backdate(SandboxRefund, [(sr, at) for sr, (_, at) in zip(sandbox_refunds, refunds)])
        self._backdate(Refund, refunds)
        self._backdate(TransactionEvent, events)

        # The cached totals come from the ledger through the one function that derives them. These
        # rows were created in this database transaction and no one else can see them yet, so
        # there is no row to lock against.
        for transaction in transactions:
            transaction_recalculate(transaction=transaction)

    def _refund_amounts(self, amount_cents: int, plan: Plan) -> list[tuple[int, bool]]:
        rng = self.rng
        if plan.refund_fails:
            return [(amount_cents, False)]
        if plan.status == TransactionStatus.PARTIALLY_REFUNDED:
            return [(max(100, amount_cents * rng.choice([20, 25, 40, 50, 60]) // 100), True)]
        if plan.status == TransactionStatus.REFUNDED:
            if amount_cents >= 2000 and rng.random() < 0.3:
                first = amount_cents // 2
                return [(first, True), (amount_cents - first, True)]
            return [(amount_cents, True)]
        return []

    def _backdate(self, model, rows) -> None:
        """Set each row's ``created_at`` (which ``auto_now_add`` stamped "now") in one statement."""
        if not rows:
            return
        for row, at in rows:
            row.created_at = at
        table = connection.ops.quote_name(model._meta.db_table)
        pk = connection.ops.quote_name(model._meta.pk.column)
        values = ", ".join(["(%s, %s::timestamptz)"] * len(rows))
        params = [value for row, at in rows for value in (row.pk, at)]
        with connection.cursor() as cursor:
            cursor.execute(
                f"UPDATE {table} SET created_at = v.at FROM (VALUES {values}) AS v(pk, at) WHERE {table}.{pk} = v.pk",
                params,
            )

    def _id(self, prefix: str) -> str:
        return f"{prefix}_sbx_{self.rng.getrandbits(96):024x}"


# -- a card on file (holds and payment plans in `make dev`) ---------------------------------------------

# The demo EHR's patient whose card is kept on file: the README's walk of automatic collection
# holds her copays and sets up her payment plan (her balance is $310.50 on the demo EHR).
DEMO_CARD_PATIENT_EHR_ID = "demo-p-000003"
DEMO_CARD_NUMBER = "4242424242424242"


def demo_card_on_file_build(*, organization: Organization, now: datetime) -> list[str]:
    """Keep a Sandbox card on file for the demo EHR's patient ``DEMO_CARD_PATIENT_EHR_ID``, saved the
    way a patient saves one from a payment link (the Sandbox's "save your card" page, the consent in
    her language recorded word for word), once. Returns the lines the seed command prints."""
    patient = Patient.objects.filter(organization=organization, external_ehr_id=DEMO_CARD_PATIENT_EHR_ID).first()
    if patient is None or organization.payment_gateway != PaymentGateway.SANDBOX:
        return []
    card = SavedCard.objects.filter(organization=organization, patient=patient).order_by("pk").first()
    if card is None:
        customer = sandbox_processor.customer_create(organization_id=organization.pk)
        session = sandbox_processor.setup_session_create(
            organization_id=organization.pk,
            customer_id=customer.id,
            client_reference="demo",
            merchant_name=organization.display_name,
            success_url=settings.SITE_URL,
            cancel_url=settings.SITE_URL,
        )
        sandbox_processor.setup_card_submit(
            session_id=session.id, card_number=DEMO_CARD_NUMBER, expiry_month="12", expiry_year=str(now.year + 3), cvc="123"
        )
        with translation.override(patient.preferred_language or settings.LANGUAGE_CODE):
            consent = card_on_file_consent_text(organization)
        card = SavedCard.objects.create(
            organization=organization,
            patient=patient,
            vendor=PaymentGateway.SANDBOX,
            gateway_customer_id=customer.id,
            gateway_setup_id=session.id,
            consent_text=consent,
            consented_at=now,
        )
        card = saved_card_setup_complete(saved_card=card)
    return [f"  Card on file: {card} for {patient.full_name} ({DEMO_CARD_PATIENT_EHR_ID}), for holds and payment plans"]
