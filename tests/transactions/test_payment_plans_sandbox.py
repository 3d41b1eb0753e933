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
