"""The README's "Trying it end to end", step by step, in Chromium: a staff member requests a payment,
the patient opens the link from the dev outbox and pays with 4242, staff find it on the dashboard,
and a manager refunds exactly half."""

from __future__ import annotations

import datetime
import re

import pytest
from playwright.sync_api import expect

from lumapay.models import DevOutboxMessage
from org_profile.enums import Role
from transactions.enums import TransactionStatus
from transactions.models import PaymentRequest, Refund, Transaction

from ..factories import LocationFactory, MembershipFactory, OrganizationFactory, PatientFactory, UserFactory
from .support import PHONE, SUCCEEDS, card_enter, date_of_birth_enter, sandbox_pay_button, sign_in, sign_out

pytestmark = pytest.mark.browser


def test_readme_end_to_end_request_pay_and_refund_half(new_page, checks, settings):
    # Given the demo's people: a staff member of the Downtown location, a manager, and a patient
    settings.DEV_OUTBOX_ENABLED = True
    settings.EMAIL_BACKEND = "lumapay.dev_outbox.EmailBackend"
    settings.SMS_BACKEND = "dev_outbox"
    organization = OrganizationFactory(name="Riverside Family Medicine")
    downtown = LocationFactory(organization=organization, name="Downtown Clinic", address="12 Elm St")
    staff = MembershipFactory(
        organization=organization, role=Role.STAFF, locations=[downtown], user=UserFactory(email="staff@riverside.example")
    ).user
    manager = MembershipFactory(
        organization=organization, role=Role.MANAGER, user=UserFactory(email="manager@riverside.example")
    ).user
    patient = PatientFactory(
        organization=organization,
        first_name="Jorge",
        last_name="García",
        date_of_birth=datetime.date(1979, 11, 23),
        email="jorge.garcia@mail.example",
    )
    staff_page = new_page()

    # When staff sign in, find the patient in the Hub and open their profile
    sign_in(staff_page, staff, checks)
    checks.check(staff_page, "dashboard (empty)")
    staff_page.get_by_role("link", name="Hub").click()
    expect(staff_page.get_by_role("heading", name="Hub", level=1)).to_be_visible()
    checks.check(staff_page, "hub")
    staff_page.get_by_label("Search patients").fill("Garc")
    staff_page.get_by_role("button", name="Search").click()
    staff_page.get_by_role("link", name="García, Jorge").click()
    expect(staff_page.get_by_role("heading", name="Jorge García", level=1)).to_be_visible()
    checks.check(staff_page, "patient profile")

    # And request $45.00 for an office visit copay
    staff_page.get_by_role("link", name="Request payment", exact=True).click()
    expect(staff_page.get_by_role("heading", name="Request payment from Jorge García")).to_be_visible()
    checks.check(staff_page, "payment request new")
    staff_page.get_by_label("Amount").fill("45.00")
    staff_page.get_by_label("Copay").check()
    staff_page.get_by_label("Billing item").fill("Office visit copay")
    expect(staff_page.get_by_label("Location")).to_have_value(str(downtown.pk))
    staff_page.get_by_role("button", name="Send request").click()
    expect(staff_page.get_by_role("heading", name="$45.00 · Office visit copay")).to_be_visible()
    checks.check(staff_page, "payment request detail")
    payment_request = PaymentRequest.objects.get(patient=patient)
    assert (payment_request.amount_cents, payment_request.billing_item, payment_request.location) == (
        4500,
        "Office visit copay",
        downtown,
    )

    # And open the link in the e-mail in the dev outbox, as the patient
    staff_page.get_by_role("link", name="dev outbox").click()
    expect(staff_page.get_by_role("heading", name="Dev outbox")).to_be_visible()
    e_mail = staff_page.get_by_role("article").filter(has_text="jorge.garcia@mail.example").first
    link = e_mail.get_by_role("link", name="/pay/").first.get_attribute("href")
    patient_page = new_page(viewport=PHONE)
    patient_page.goto(link)

    # And confirm the date of birth on the profile, check the amount and pay with 4242 on the Sandbox
    expect(patient_page.get_by_role("heading", name="Confirm your date of birth")).to_be_visible()
    expect(patient_page.get_by_text("Riverside Family Medicine", exact=True).first).to_be_visible()
    checks.check(patient_page, "pay: verify")
    date_of_birth_enter(patient_page, datetime.date(1979, 11, 23))
    patient_page.get_by_role("button", name="Continue").click()
    expect(patient_page.get_by_role("heading", name="Your payment")).to_be_visible()
    expect(patient_page.get_by_text("Copay: Office visit copay")).to_be_visible()
    checks.check(patient_page, "pay: details")
    patient_page.get_by_role("button", name="Pay $45.00").click()
    expect(patient_page.get_by_text("SANDBOX — test payments only")).to_be_visible()
    checks.check(patient_page, "sandbox: checkout")
    card_enter(patient_page, SUCCEEDS)
    sandbox_pay_button(patient_page, "$45.00").click()

    # Then the patient sees the receipt
    expect(patient_page.get_by_role("heading", name="Payment received")).to_be_visible()
    expect(patient_page.get_by_text("Visa •••• 4242")).to_be_visible()
    expect(patient_page.get_by_text("A receipt was e-mailed to j•••@mail.example.")).to_be_visible()
    checks.check(patient_page, "pay: done (receipt)")
    assert list(DevOutboxMessage.objects.filter(subject__startswith="Your receipt").values_list("to", "subject")) == [
        ("jorge.garcia@mail.example", "Your receipt from Riverside Family Medicine: $45.00")
    ]

    # And staff see the transaction at the top of the dashboard, paid, with its timeline
    staff_page.goto("/")
    first_row = staff_page.get_by_role("region", name="Transactions").get_by_role("row").nth(1)
    expect(first_row).to_contain_text("García")
    expect(first_row).to_contain_text("$45.00")
    checks.check(staff_page, "dashboard")
    first_row.get_by_role("link").first.click()
    expect(staff_page.get_by_role("heading", name="$45.00 · Jorge García", level=1)).to_be_visible()
    expect(staff_page.get_by_role("heading", name="Timeline")).to_be_visible()
    checks.check(staff_page, "transaction detail (paid)")
    transaction = Transaction.objects.get(payment_request=payment_request)
    assert (transaction.status, transaction.charged_cents, transaction.refunded_cents) == (
        TransactionStatus.SUCCEEDED,
        4500,
        0,
    )

    # When a manager opens the same transaction and refunds half of it: type the amount, Review, Confirm
    sign_out(staff_page)
    sign_in(staff_page, manager)
    staff_page.goto(f"/transactions/{transaction.pk}/")
    refund_form = staff_page.locator("form", has=staff_page.get_by_role("button", name="Review refund"))
    refund_form.get_by_role("textbox", name=re.compile("amount", re.IGNORECASE)).fill("22.50")
    refund_form.get_by_role("textbox", name="Reason").fill("Half of the copay was charged twice")
    refund_form.get_by_role("button", name="Review refund").click()
    expect(staff_page.get_by_role("heading", name="Confirm the refund")).to_be_visible()
    expect(staff_page.get_by_text("$22.50").first).to_be_visible()
    checks.check(staff_page, "refund confirmation")
    staff_page.get_by_role("button", name="Confirm refund").click()

    # Then the transaction shows partially refunded, with exactly half refunded
    expect(staff_page.get_by_role("heading", name="$45.00 · Jorge García", level=1)).to_be_visible()
    expect(staff_page.get_by_text("Partially refunded").first).to_be_visible()
    checks.check(staff_page, "transaction detail (partially refunded)")
    transaction.refresh_from_db()
    assert (transaction.status, transaction.charged_cents, transaction.refunded_cents) == (
        TransactionStatus.PARTIALLY_REFUNDED,
        4500,
        2250,
    )
    assert list(Refund.objects.filter(transaction=transaction).values_list("amount_cents", "reason")) == [
        (2250, "Half of the copay was charged twice")
    ]
    checks.assert_clean()
