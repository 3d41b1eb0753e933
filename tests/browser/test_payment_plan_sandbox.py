"""A payment plan on the Sandbox, in the browser: the patient opens their balance link, saves a card
on the Sandbox's page, chooses three monthly payments and agrees; the first one is charged at once,
and staff see the plan's schedule and history on the profile and can set one up there. Every page
passes axe-core and fits 390 px."""

from __future__ import annotations

import datetime
import re

import pytest
from playwright.sync_api import expect

from transactions.enums import PaymentRequestKind
from transactions.models import PaymentPlan, PaymentRequest

from ..transactions.pay_support import pay_url, payment_request_make
from .support import PHONE, SUCCEEDS, card_enter, date_of_birth_enter, sign_in

pytestmark = pytest.mark.browser

BIRTH_DATE = datetime.date(1984, 3, 9)  # tests/factories.py's PatientFactory


def test_the_patient_sets_up_a_plan_from_their_balance_link_and_staff_see_it(new_page, checks, organization, location, manager):
    # Given a $120.00 balance request on a Sandbox clinic, and a patient with no card on file
    payment_request = payment_request_make(organization=organization, amount_cents=12000, location=location)
    PaymentRequest.objects.filter(pk=payment_request.pk).update(kind=PaymentRequestKind.BALANCE, billing_item="Balance after insurance")
    page = new_page(viewport=PHONE)
    page.goto(pay_url("verify", payment_request))
    date_of_birth_enter(page, BIRTH_DATE)
    page.get_by_role("button", name="Continue").click()

    # When they ask to pay in instalments, they save a card first
    page.get_by_role("link", name="See payment plans").click()
    expect(page.get_by_role("heading", name="First, save a card")).to_be_visible()
    checks.check(page, "pay: plan, save a card first")
    page.get_by_label("I agree to keep my card on file.").check()
    page.get_by_role("button", name="Save a card").click()
    card_enter(page, SUCCEEDS)
    page.get_by_role("button", name="Save card", exact=True).click()

    # then choose three monthly payments, read the consent and agree
    expect(page.get_by_text("3 monthly payments of about $40.00, the first one today")).to_be_visible()
    checks.check(page, "pay: plan offers")
    page.get_by_label(re.compile("3 monthly payments")).check()
    page.get_by_role("button", name="Continue").click()
    checks.check(page, "pay: plan consent")
    page.get_by_label("I agree to this payment plan.").check()
    page.get_by_role("button", name="Set up my payment plan").click()

    # Then the plan is set up and its first payment charged
    expect(page.get_by_role("heading", name="Your payment plan is set up")).to_be_visible()
    checks.check(page, "pay: plan set up")
    plan = PaymentPlan.objects.get()
    first = plan.instalments.get(number=1)
    assert (plan.consent_source, first.status, first.transaction.charged_cents) == ("pay_link", "paid", 4000)

    # and staff see it on the profile, with its history, and may set up another
    staff = new_page()
    sign_in(staff, manager)
    staff.goto(f"/patients/{plan.patient_id}/")
    expect(staff.get_by_role("heading", name=re.compile(rf"^Plan #{plan.pk}: \$120\.00 in 3 instalments"))).to_be_visible()
    checks.check(staff, "patient profile (payment plan)")
    staff.get_by_role("link", name="Set up a payment plan").click()
    expect(staff.get_by_role("heading", name=re.compile("^Payment plan for"))).to_be_visible()
    staff.get_by_label("Amount to split").fill("90.00")
    staff.get_by_role("button", name="Review the schedule").click()
    expect(staff.get_by_text("The patient agreed to this text")).to_be_visible()
    expect(staff.get_by_role("cell", name="$30.00").first).to_be_visible()
    checks.check(staff, "payment plan: review")
    checks.assert_clean()
