"""Helpers for the intake form tests: a form built and published through the services (as the
builder pages do), its signed link, and a patient's steps with Django's test client."""

from __future__ import annotations

from urllib.parse import urlsplit

from django.urls import reverse

from intake_forms.models import FormSubmission, IntakeForm
from intake_forms.services import (
    form_create,
    form_draft,
    form_link_token,
    form_publish,
    question_add,
    section_add,
    submission_start,
)

from ..transactions.pay_support import card_fields, dob_fields


def form_make(*, organization, actor, title="New patient intake", questions=(), publish=True) -> IntakeForm:
    """``questions``: dicts of ``question_add`` values; ``condition_on`` names an earlier question's
    label whose key becomes the condition."""
    form = form_create(organization=organization, actor=actor, title=title)
    section = section_add(organization=organization, actor=actor, form=form, title="About you")
    keys = {}
    for values in questions:
        values = dict(values)
        if "condition_on" in values:
            values["condition_key"] = keys[values.pop("condition_on")]
        question = question_add(organization=organization, actor=actor, section=section, values=values)
        keys[question.label] = question.key
    if publish:
        form_publish(organization=organization, actor=actor, form=form)
    return form


def keys_of(form: IntakeForm, version=None) -> dict[str, str]:
    version = version or form_draft(form=form)
    return {question.label: question.key for section in version.sections.all() for question in section.questions.all()}


def form_url(name: str, submission: FormSubmission) -> str:
    return reverse(f"form:{name}", kwargs={"token": form_link_token(submission)})


def open_form(client, submission: FormSubmission):
    response = client.post(form_url("verify", submission), dob_fields(submission.patient.date_of_birth))
    assert response.status_code == 302, response.content.decode()[:500]
    return client


def answers(submission: FormSubmission, by_label: dict, **extra) -> dict:
    keys = {q.label: q.key for section in submission.version.sections.all() for q in section.questions.all()}
    return {**{f"q_{keys[label]}": value for label, value in by_label.items()}, **extra}


def pay_on_sandbox(client, response, capture, number="4242 4242 4242 4242"):
    """Follow "Pay" to the Sandbox's hosted page, pay there; the path the Sandbox sends the patient back to."""
    assert response.status_code == 302, response.content.decode()[:800]
    sandbox_path = urlsplit(response["Location"]).path
    assert sandbox_path.startswith("/sandbox/checkout/")
    with capture(execute=True):
        paid = client.post(sandbox_path, card_fields(number))
    assert paid.status_code == 302
    return urlsplit(paid["Location"]).path


__all__ = ["submission_start"]
