"""A manager builds an intake form on a phone: a section, a choice question, a question shown by a
condition, a copay payment question, publish, "with the copay request"; then reads a submission.
Every page passes axe-core and fits 390 px."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from intake_forms.models import FormQuestion, IntakeForm
from intake_forms.services import answers_save, form_published_version, submission_start

from ..factories import LocationFactory, MembershipFactory, PatientFactory
from .support import PHONE, sign_in

pytestmark = pytest.mark.browser


def test_a_manager_builds_and_publishes_a_form_on_a_phone(new_page, checks, organization):
    LocationFactory(organization=organization, name="Downtown Clinic")
    manager = MembershipFactory(organization=organization, role="manager").user
    page = new_page(viewport=PHONE)
    sign_in(page, manager)

    page.goto("/intake-forms/")
    expect(page.get_by_role("heading", name="Intake forms", level=1)).to_be_visible()
    checks.check(page, "forms: list (empty)")
    page.get_by_label("Title").fill("Before your visit")
    page.get_by_role("button", name="Create the form").click()

    expect(page.get_by_role("heading", name="Before your visit", level=1)).to_be_visible()
    checks.check(page, "forms: edit (empty)")
    page.get_by_label("Section title").fill("Health")
    page.get_by_role("button", name="Add the section").click()

    page.get_by_text("Add a question to “Health”").click()
    page.get_by_label("Kind").select_option("single_choice")
    page.get_by_label("Question", exact=True).fill("Any allergies?")
    page.get_by_label("Required").check()
    page.get_by_label("Options of a choice or checkboxes question, one per line").fill("yes\nno")
    checks.check(page, "forms: add a question")
    page.get_by_role("button", name="Add the question").click()

    page.get_by_text("Add a question to “Health”").click()
    page.get_by_label("Kind").select_option("short_text")
    page.get_by_label("Question", exact=True).fill("Which ones?")
    page.get_by_label("Show only when the answer to").select_option(label="Any allergies?")
    page.get_by_label("is", exact=True).fill("yes")
    page.get_by_role("button", name="Add the question").click()

    page.get_by_text("Add a question to “Health”").click()
    page.get_by_label("Kind").select_option("payment")
    page.get_by_label("Question", exact=True).fill("Your copay")
    page.get_by_label("Amount", exact=True).select_option("copay")
    page.get_by_role("button", name="Add the question").click()

    expect(page.get_by_text("Shown when “Any allergies?” is “yes”")).to_be_visible()
    page.get_by_role("button", name="Publish version 1").click()
    expect(page.get_by_text("Version 1 is published")).to_be_visible()
    page.get_by_label("Send with the automatic copay request before a visit", exact=False).check()
    page.get_by_role("button", name="Save", exact=True).click()
    checks.check(page, "forms: edit (published)")

    form = IntakeForm.objects.get()
    assert form.with_copay_request
    version = form_published_version(form)
    assert [q.label for q in FormQuestion.objects.filter(section__version=version)] == ["Any allergies?", "Which ones?", "Your copay"]

    page.goto("/intake-forms/")
    checks.check(page, "forms: list")

    # A submission, as staff read it
    patient = PatientFactory(organization=organization)
    submission = submission_start(form=form, patient=patient)
    keys = {q.label: q.key for q in FormQuestion.objects.filter(section__version=version)}
    answers_save(submission=submission, data={f"q_{keys['Any allergies?']}": "yes", f"q_{keys['Which ones?']}": "Penicillin"})
    page.goto(f"/patients/{patient.pk}/")
    expect(page.get_by_role("heading", name="Intake forms")).to_be_visible()
    checks.check(page, "patient profile with forms")
    page.get_by_role("link", name="Before your visit").click()
    expect(page.get_by_text("Penicillin")).to_be_visible()
    checks.check(page, "forms: submission")
    checks.assert_clean()
