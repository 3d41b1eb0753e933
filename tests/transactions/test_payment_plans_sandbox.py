"""Payment plans on the Sandbox processor (what `make dev` runs): a card saved on the Sandbox's
page carries a plan whose instalments LumaPay charges on their dates, a card declined when charged
is retried, and two charging passes at once still charge once."""

import pytest

from lumapay.models import AuditEvent
from transactions.models import PaymentPlanAttempt, Transaction
from transactions.sandbox.models import SandboxPaymentIntent
from transactions.services.payment_plans import payment_plan_instalment_charge, payment_plan_instalments_charge_due

from .test_payment_plans import _create, _in_threads
from .test_sandbox_saved_cards import DECLINED_WHEN_CHARGED, _save


def test_a_plan_on_a_sandbox_card_charges_its_first_instalment_on_its_date(client, organization, manager, location, patient):
    card = _save(client, organization, patient)
    client.logout()
    plan = _create(organization, manager, card, location)
    first = plan.instalments.get(number=1)

    assert payment_plan_instalments_charge_due(now=first.next_attempt_at) == 1

    first.refresh_from_db()
    assert (first.status, first.transaction.status, first.transaction.charged_cents, first.transaction.vendor) == (
        "paid", "succeeded", 4000, "sandbox",
    )
    assert first.transaction.automation_rule == "plan_instalment"
    assert AuditEvent.objects.get(action="payment_plan.instalment_paid").actor_type == "system"


def test_a_sandbox_card_declined_when_charged_is_retried(client, organization, manager, location, patient):
    card = _save(client, organization, patient, DECLINED_WHEN_CHARGED)
    client.logout()
    plan = _create(organization, manager, card, location)
    first = plan.instalments.get(number=1)

    payment_plan_instalment_charge(instalment_id=first.pk, now=first.next_attempt_at)

    first.refresh_from_db()
    assert (first.status, first.attempts, first.transaction.status) == ("retrying", 1, "failed")
    assert first.payment_request.automation_rule == "plan_instalment"


@pytest.mark.reliability
@pytest.mark.django_db(transaction=True)
def test_two_passes_at_once_on_the_sandbox_charge_once(client, organization, manager, location, patient):
    card = _save(client, organization, patient)
    client.logout()
    plan = _create(organization, manager, card, location)
    first = plan.instalments.get(number=1)
    intents_before = SandboxPaymentIntent.objects.count()

    results = _in_threads(3, lambda _index: payment_plan_instalments_charge_due(now=first.next_attempt_at))

    assert not [r for r in results if isinstance(r, BaseException)], results
    assert sum(results) == 1
    assert SandboxPaymentIntent.objects.count() == intents_before + 1
    assert PaymentPlanAttempt.objects.count() == 1
    assert Transaction.objects.filter(automation_rule="plan_instalment").count() == 1


def _balance_request(organization, patient, location, cents=12000):
    import datetime

    from django.utils import timezone

    from transactions.models import PaymentRequest

    return PaymentRequest.objects.create(
        organization=organization, patient=patient, location=location, kind="balance", billing_item="Account balance",
        amount_cents=cents, expires_at=timezone.now() + datetime.timedelta(days=30),
    )


def _plan_from_link(organization, card, location, payment_request):
    from transactions.services.payment_plans import clinic_today, payment_plan_consent_text, payment_plan_create, payment_plan_schedule

    today = clinic_today(organization)
    schedule = payment_plan_schedule(total_cents=payment_request.amount_cents, instalment_count=3, first_due_date=today)
    shown = payment_plan_consent_text(organization=organization, saved_card=card, billing_item="Account balance", schedule=schedule)
    return payment_plan_create(
        organization=organization, actor=None, saved_card=card, location=location, total_cents=payment_request.amount_cents,
        instalment_count=3, first_due_date=today, billing_item="Account balance", consent_given=True, consent_text=shown,
        source_payment_request=payment_request,
    )  # fmt: skip


def test_a_checkout_begun_on_the_link_is_closed_when_the_patient_takes_a_plan_instead(client, organization, location, patient):
    """The patient opened the checkout of their balance link in one tab, then chose a plan in
    another: the checkout is closed at the processor first, so the whole amount can no longer be
    paid there on top of the plan."""
    from transactions.sandbox import processor
    from transactions.sandbox.processor import CardEntryError
    from transactions.services.payments import checkout_begin

    card = _save(client, organization, patient)
    client.logout()
    payment_request = _balance_request(organization, patient, location)
    start = checkout_begin(payment_request=payment_request, ip_address=None)

    plan = _plan_from_link(organization, card, location, payment_request)

    assert plan.source_payment_request == payment_request
    with pytest.raises(CardEntryError):
        processor.card_submit(session_id=start.checkout_id, card_number="4242424242424242", expiry_month="12", expiry_year="2030", cvc="123")
    assert not Transaction.objects.filter(payment_request=payment_request, charged_cents__gt=0).exists()
    payment_request.refresh_from_db()
    assert payment_request.status == "cancelled"


def test_a_link_paid_in_full_meanwhile_gets_no_plan(client, organization, location, patient):
    """Paid on the Sandbox's checkout before the plan is chosen: no plan, whichever check sees it
    first (the Sandbox's event, delivered in process, usually has the request paid already)."""
    from transactions.models import PaymentPlan
    from transactions.sandbox import processor
    from transactions.services.payments import checkout_begin

    card = _save(client, organization, patient)
    client.logout()
    payment_request = _balance_request(organization, patient, location)
    start = checkout_begin(payment_request=payment_request, ip_address=None)
    processor.card_submit(session_id=start.checkout_id, card_number="4242424242424242", expiry_month="12", expiry_year="2030", cvc="123")

    with pytest.raises(Exception) as refused:
        _plan_from_link(organization, card, location, payment_request)

    assert "paid" in str(refused.value.message if hasattr(refused.value, "message") else refused.value)
    assert not PaymentPlan.objects.exists()
    assert Transaction.objects.get(payment_request=payment_request, charged_cents__gt=0).charged_cents == 12000


def test_a_plan_takes_the_place_of_the_balance_request_lumapay_sent_and_the_balance_rule_asks_no_more(
    client, organization, manager, location, patient
):
    """The balance rule asked the patient for their balance; staff then set up a plan for it: the
    automatic request is cancelled (its reminders stop) and the rule does not ask again while the
    plan runs, even when the balance grows."""
    from django.utils import timezone

    from ehr_sync.models import Balance
    from transactions.models import CollectionRules, PaymentRequest
    from transactions.selectors.collection_schedule import balance_requests_due

    card = _save(client, organization, patient)
    client.logout()
    CollectionRules.objects.update_or_create(organization=organization, defaults={"balance_request_enabled": True, "quiet_hours_start": "00:00", "quiet_hours_end": "00:00"})
    Balance.objects.update_or_create(patient=patient, defaults={"organization": organization, "amount_due_cents": 12000, "as_of": timezone.now()})
    ask = _balance_request(organization, patient, location)
    PaymentRequest.objects.filter(pk=ask.pk).update(automation_rule="balance_request")

    plan = _create(organization, manager, card, location)

    ask.refresh_from_db()
    assert ask.status == "cancelled"
    cancelled = AuditEvent.objects.get(action="payment_request.cancelled", payment_request=ask)
    assert (cancelled.actor_type, cancelled.changes["reason"]) == ("system", f"Replaced by payment plan #{plan.pk}.")
    Balance.objects.filter(patient=patient).update(amount_due_cents=20000)
    assert not balance_requests_due(now=timezone.now()).filter(patient=patient).exists()
