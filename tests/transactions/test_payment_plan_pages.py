"""The payment plan pages through Django's test client against localstripe: staff set one up
(review, consent, confirm) and cancel it from the patient profile; the patient sets one up from
their balance link, and puts a new card on file from the link sent after a decline."""

import datetime
import re
from html import unescape

import pytest
from django.test import Client

from lumapay.models import AuditEvent
from transactions.enums import PaymentRequestKind
from transactions.models import PaymentPlan, PaymentPlanInstalment, PaymentRequest, SavedCard, Transaction
from transactions.services.payment_plans import clinic_today, payment_plan_instalment_charge

from ..factories import OrganizationFactory, PatientFactory
from ..stripe_support import CARD_DECLINED_AT_CHARGE, CARD_SUCCEEDS
from .pay_support import pay_url, payment_request_make, text, verified
from .test_payment_plans import _card, _create

pytestmark = pytest.mark.django_db

CARD_CONSENT = (
    "I authorize Riverside Family Medicine to keep this card on file with its payment processor and to charge it for "
    "my copays and balances, including holding a copay before a visit and charging it at check-in. I can remove "
    "the card at any time from a payment link or by asking the clinic."
)


def _plan_form(card, location, **overrides):
    return {
        "saved_card": card.pk,
        "amount": "120.00",
        "instalment_count": "3",
        "first_due_date": (clinic_today(card.organization) + datetime.timedelta(days=3)).isoformat(),
        "billing_item": "Balance after insurance",
        "location": location.pk,
        **overrides,
    }


# -- staff -----------------------------------------------------------------------------------------


def test_a_manager_reviews_the_schedule_and_the_consent_then_sets_up_the_plan(
    client, stripe_world, stripe_organization, manager, location, patient
):
    card = _card(stripe_world, stripe_organization, patient)
    client.force_login(manager)
    url = f"/patients/{patient.pk}/payment-plan/"

    # the profile offers it
    assert "Set up a payment plan" in text(client.get(f"/patients/{patient.pk}/"))

    # step 1: review shows the schedule and the text to read to the patient; nothing is set up
    review = text(client.post(url, _plan_form(card, location)))
    assert "$40.00" in review and "The patient agreed to this text" in review
    assert "I authorize Riverside Family Medicine to charge my card" in review
    assert not PaymentPlan.objects.exists()

    # step 2 without the box ticked: refused, nothing set up
    consent_text = unescape(re.search(r'name="consent_text" value="([^"]*)"', review).group(1))
    refused = client.post(url, {**_plan_form(card, location), "step": "confirm", "consent_text": consent_text})
    assert "must agree to the plan as shown" in text(refused)
    assert not PaymentPlan.objects.exists()

    # step 2 with the box ticked: set up, and on the profile with its schedule and history
    done = client.post(url, {**_plan_form(card, location), "step": "confirm", "consent_text": consent_text, "consent": "yes"})
    assert done.status_code == 302 and done.url == f"/patients/{patient.pk}/"
    plan = PaymentPlan.objects.get()
    assert (plan.created_by, plan.consent_text, plan.total_cents) == (manager, consent_text, 12000)
    profile = text(client.get(f"/patients/{patient.pk}/"))
    assert f"Plan #{plan.pk}: $120.00 in 3 instalments" in profile
    assert "Payment plan set up, by" in profile
    assert "Cancel plan" in profile


def test_staff_whose_role_may_not_use_cards_get_403_and_no_offer(
    client, stripe_world, stripe_organization, staff_user, location, patient
):
    card = _card(stripe_world, stripe_organization, patient)
    client.force_login(staff_user)
    assert "Set up a payment plan" not in text(client.get(f"/patients/{patient.pk}/"))
    response = client.post(f"/patients/{patient.pk}/payment-plan/", {**_plan_form(card, location), "step": "confirm", "consent": "yes"})
    assert response.status_code == 403
    assert not PaymentPlan.objects.exists()


def test_another_organizations_patient_or_plan_is_a_404(client, stripe_world, stripe_organization, manager, location, patient):
    card = _card(stripe_world, stripe_organization, patient)
    plan = _create(stripe_organization, manager, card, location)
    other = OrganizationFactory(name="Lakeside Pediatrics")
    from ..factories import MembershipFactory

    outsider = MembershipFactory(organization=other, role="administrator").user
    other.payment_gateway = stripe_organization.payment_gateway
    other.save()
    client.force_login(outsider)
    assert client.get(f"/patients/{patient.pk}/payment-plan/").status_code == 404
    assert client.post(f"/payment-plans/{plan.pk}/cancel/").status_code == 404
    plan.refresh_from_db()
    assert plan.status == "active"


def test_a_manager_cancels_a_plan_from_the_profile(client, stripe_world, stripe_organization, manager, location, patient):
    card = _card(stripe_world, stripe_organization, patient)
    plan = _create(stripe_organization, manager, card, location)
    client.force_login(manager)

    response = client.post(f"/payment-plans/{plan.pk}/cancel/")

    assert response.status_code == 302
    plan.refresh_from_db()
    assert plan.status == "cancelled"
    profile = text(client.get(f"/patients/{patient.pk}/"))
    assert "Payment plan cancelled, by" in profile and "Cancel plan" not in profile


# -- the patient ----------------------------------------------------------------------------------


def _balance_link(organization, patient, client):
    payment_request = payment_request_make(organization=organization, patient=patient, amount_cents=12000)
    PaymentRequest.objects.filter(pk=payment_request.pk).update(kind=PaymentRequestKind.BALANCE)
    payment_request.refresh_from_db()
    verified(client, payment_request)
    return payment_request


def test_the_patient_sets_up_a_plan_from_their_link_and_the_first_instalment_is_charged(
    client, stripe_world, stripe_organization, patient, django_capture_on_commit_callbacks
):
    card = _card(stripe_world, stripe_organization, patient)
    payment_request = _balance_link(stripe_organization, patient, client)

    details = text(client.get(pay_url("details", payment_request)))
    assert "See payment plans" in details
    offers = text(client.get(pay_url("plan", payment_request)))
    assert "3 monthly payments of about $40.00, the first one today" in offers
    assert "6 monthly payments of about $20.00, the first one today" in offers

    review = client.post(pay_url("plan", payment_request), {"offer": "3"})
    consent_text = unescape(re.search(r'name="consent_text" value="([^"]*)"', text(review)).group(1))
    assert consent_text.startswith(f"I authorize Riverside Family Medicine to charge my card {card} 3 payments")
    with django_capture_on_commit_callbacks(execute=True):
        created = client.post(
            pay_url("plan", payment_request),
            {"offer": "3", "step": "confirm", "consent": "yes", "consent_text": consent_text},
            REMOTE_ADDR="203.0.113.9",
        )
    assert created.status_code == 200, text(created)[:400]
    assert "Your payment plan is set up" in text(created)

    plan = PaymentPlan.objects.get()
    assert (plan.consent_source, plan.created_by, plan.consent_ip_address, plan.source_payment_request) == (
        "pay_link", None, "203.0.113.9", payment_request,
    )
    first = plan.instalments.get(number=1)
    assert (first.status, first.transaction.charged_cents, first.transaction.automation_rule) == ("paid", 4000, "plan_instalment")
    payment_request.refresh_from_db()
    assert payment_request.status == "cancelled"  # replaced by the plan
    created_audit = AuditEvent.objects.get(action="payment_plan.created")
    assert (created_audit.actor_type, created_audit.ip_address) == ("patient", "203.0.113.9")


def test_the_plan_page_needs_the_date_of_birth_check(client, stripe_world, stripe_organization, patient):
    _card(stripe_world, stripe_organization, patient)
    payment_request = payment_request_make(organization=stripe_organization, patient=patient, amount_cents=12000)
    PaymentRequest.objects.filter(pk=payment_request.pk).update(kind=PaymentRequestKind.BALANCE)
    response = Client().post(pay_url("plan", payment_request), {"offer": "3", "step": "confirm", "consent": "yes"})
    assert response.status_code == 302 and response.url == pay_url("verify", payment_request)
    assert not PaymentPlan.objects.exists()


def test_a_patient_without_a_card_saves_one_first_then_chooses(client, stripe_world, stripe_organization, patient):
    payment_request = _balance_link(stripe_organization, patient, client)

    page = text(client.get(pay_url("plan", payment_request)))
    assert "First, save a card" in page

    response = client.post(pay_url("card_save", payment_request), {"for": "plan", "consent": "yes", "consent_text": CARD_CONSENT})
    assert response.status_code == 302
    card = SavedCard.objects.get(patient=patient)
    stripe_world.checkout.save_card(card.gateway_setup_id)
    back = client.get(pay_url("card_saved", payment_request))
    assert back.status_code == 302 and back.url == pay_url("plan", payment_request)
    assert "3 monthly payments of about $40.00" in text(client.get(pay_url("plan", payment_request)))


def test_after_a_decline_the_patient_puts_a_new_card_on_file_from_the_link_and_it_is_charged(
    client, stripe_world, stripe_organization, manager, location, patient, django_capture_on_commit_callbacks
):
    declining = _card(stripe_world, stripe_organization, patient, CARD_DECLINED_AT_CHARGE)
    plan = _create(stripe_organization, manager, declining, location)
    first = plan.instalments.get(number=1)
    payment_plan_instalment_charge(instalment_id=first.pk, now=first.next_attempt_at)
    first.refresh_from_db()
    link = first.payment_request
    verified(client, link)

    details = text(client.get(pay_url("details", link)))
    assert "This is payment 1 of 3 of your payment plan" in details and "Put a new card on file" in details

    client.post(pay_url("card_save", link), {"for": "plan", "consent": "yes", "consent_text": CARD_CONSENT})
    new_card = SavedCard.objects.get(patient=patient, status="pending")
    stripe_world.checkout.save_card(new_card.gateway_setup_id, card_number=CARD_SUCCEEDS)
    with django_capture_on_commit_callbacks(execute=True):
        back = client.get(pay_url("card_saved", link))
    assert "Your payment plan now uses this card" in text(back)

    plan.refresh_from_db()
    first.refresh_from_db()
    assert plan.saved_card_id == new_card.pk
    assert (first.status, first.attempts, first.transaction.status) == ("paid", 2, "succeeded")
    assert AuditEvent.objects.get(action="payment_plan.card_changed").actor_type == "patient"
    assert Transaction.objects.filter(saved_card=new_card, charged_cents=4000).count() == 1


def test_an_instalment_the_patient_pays_through_the_link_is_paid_and_not_charged_again(
    client, stripe_world, stripe_organization, manager, location, patient
):
    declining = _card(stripe_world, stripe_organization, patient, CARD_DECLINED_AT_CHARGE)
    plan = _create(stripe_organization, manager, declining, location)
    first = plan.instalments.get(number=1)
    payment_plan_instalment_charge(instalment_id=first.pk, now=first.next_attempt_at)
    first.refresh_from_db()
    link = first.payment_request

    # the patient pays the instalment on the link, with another card, through Checkout
    verified(client, link)
    client.post(pay_url("checkout", link))
    paid = Transaction.objects.get(payment_request=link)
    stripe_world.checkout.pay(paid.gateway_checkout_id)
    assert client.get(pay_url("done", link)).status_code == 200
    intents_before = len(stripe_world.http.sent("POST", "/v1/payment_intents"))

    # the next pass records it paid, before its retry date, and charges nothing
    from transactions.services.payment_plans import payment_plan_instalments_charge_due

    payment_plan_instalments_charge_due(now=first.next_attempt_at - datetime.timedelta(hours=12))
    first.refresh_from_db()
    assert (first.status, first.transaction, first.attempts) == ("paid", paid, 1)
    assert len(stripe_world.http.sent("POST", "/v1/payment_intents")) == intents_before
    audit = AuditEvent.objects.get(action="payment_plan.instalment_paid")
    assert "paid by the patient through the link" in audit.changes["message"]
