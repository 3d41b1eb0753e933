"""The patient's side of an intake form: the pay page's date-of-birth gate, then the form on one
mobile-first page, saved on every post (the patient may leave and come back), with the payment
question's "Pay" going to the gateway's hosted checkout and coming back here.

Like the pay page: no account, a passed check remembered in the session per link for
``VERIFICATION_LIFETIME_SECONDS``, pages in the patient's language (or the one chosen), the link's
token never sent to another site.
"""

from __future__ import annotations

import math
import time
from functools import wraps

from django.conf import settings
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import translation
from django.utils.translation import gettext as _
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods

from lumapay.tenant_rls import all_organizations, organization_scope
from transactions.forms.pay_page import DateOfBirthForm
from transactions.gateways.base import GatewayError
from transactions.services.payments import PaymentLinkUnavailable
from transactions.views.pay_page import (
    LANGUAGE_CODES,
    SESSION_KEY as PAY_SESSION_KEY,
    clinic_context,
    language_links_for,
    patient_ip,
    patient_page_finish,
)

from .models import PaymentMode, QuestionKind, SubmissionStatus
from .services import (
    FormDateOfBirthMismatch,
    FormError,
    FormLinkLocked,
    FormLinkRateLimited,
    answers_save,
    form_link_expired,
    form_link_verify,
    form_lock_remaining,
    payment_amount,
    payment_begin,
    payment_decline,
    payment_outcome_record,
    payment_question,
    submission_from_token,
    submission_paid,
    version_questions,
    visible_questions,
)

SESSION_KEY = "form_links"
VERIFICATION_LIFETIME_SECONDS = 30 * 60


def _state(request, submission) -> dict:
    return request.session.get(SESSION_KEY, {}).get(submission.public_id.hex, {})


def _state_update(request, submission, **values) -> None:
    links = request.session.get(SESSION_KEY, {})
    links.setdefault(submission.public_id.hex, {}).update(values)
    request.session[SESSION_KEY] = links


def _is_verified(request, submission) -> bool:
    until = _state(request, submission).get("verified_until", 0)
    if until <= time.time() and submission.sent_with_id:
        # The patient confirmed their date of birth on the copay request's pay page just now.
        pay_state = request.session.get(PAY_SESSION_KEY, {}).get(submission.sent_with.public_id.hex, {})
        until = pay_state.get("verified_until", 0)
    if until <= time.time():
        return False
    _state_update(request, submission, verified_until=time.time() + VERIFICATION_LIFETIME_SECONDS)
    return True


def _language_for(request, submission) -> str:
    requested = request.GET.get("lang")
    if requested in LANGUAGE_CODES:
        _state_update(request, submission, lang=requested)
        return requested
    chosen = _state(request, submission).get("lang")
    if chosen not in LANGUAGE_CODES and submission.sent_with_id:
        # The language the patient chose on the copay request's pay page, which linked here.
        chosen = request.session.get(PAY_SESSION_KEY, {}).get(submission.sent_with.public_id.hex, {}).get("lang")
    if chosen in LANGUAGE_CODES:
        return chosen
    preferred = submission.patient.preferred_language
    return preferred if preferred in LANGUAGE_CODES else "en"


def _form_page(view):
    @never_cache
    @wraps(view)
    def wrapper(request, token):
        # The link names its submission, and the submission its clinic (reviewed, as the pay page's).
        with all_organizations():
            submission = submission_from_token(token)
        if submission is None:
            with translation.override(request.GET.get("lang") if request.GET.get("lang") in LANGUAGE_CODES else "en"):
                response = render(request, "intake_forms/patient/invalid.html", {"language_links": language_links_for(request)}, status=404)
            return patient_page_finish(response, translation.get_language())
        with organization_scope(submission.organization_id):
            language = _language_for(request, submission)
            with translation.override(language):
                if form_link_expired(submission):
                    response = _render(request, submission, token, "expired.html", status=410)
                else:
                    response = view(request, submission, token)
        return patient_page_finish(response, language)

    return wrapper


def _render(request, submission, token, template, context=None, status=200):
    page = {
        "submission": submission,
        "form_title": submission.version.form.title,
        "token": token,
        "language_links": language_links_for(request),
        **clinic_context(submission.organization),
        **(context or {}),
    }
    return render(request, f"intake_forms/patient/{template}", page, status=status)


@require_http_methods(["GET", "HEAD", "POST"])
@_form_page
def verify(request, submission, token):
    if _is_verified(request, submission):
        return redirect("form:fill", token=token)
    form = DateOfBirthForm(request.POST if request.method == "POST" else None)
    locked, rate_limited = form_lock_remaining(submission), False
    if request.method == "POST" and form.is_valid():
        try:
            form_link_verify(submission=submission, date_of_birth=form.cleaned_data["date_of_birth"], ip_address=patient_ip(request))
        except FormDateOfBirthMismatch as error:
            form.add_error(None, error.message)
        except FormLinkLocked:
            submission.refresh_from_db(fields=["verification_locked_until"])
            locked = form_lock_remaining(submission)
        except FormLinkRateLimited:
            rate_limited = True
        else:
            request.session.cycle_key()
            _state_update(request, submission, verified_until=time.time() + VERIFICATION_LIFETIME_SECONDS)
            return redirect("form:fill", token=token)
    locked_minutes = max(1, math.ceil(locked.total_seconds() / 60)) if locked else 0
    return _render(
        request, submission, token, "verify.html",
        {"form": form, "locked_minutes": locked_minutes, "rate_limited": rate_limited},
        status=429 if (locked_minutes or rate_limited) and request.method == "POST" else 200,
    )


def _fields(submission, errors: dict) -> list[dict]:
    """The visible questions by section, with their saved answers and errors."""
    questions = version_questions(submission.version)
    shown = visible_questions(questions, submission.answers)
    files = {file.question_key: file for file in submission.files.all()}
    sections: list[dict] = []
    for question in shown:
        if not sections or sections[-1]["section"].pk != question.section_id:
            sections.append({"section": question.section, "questions": []})
        answer = submission.answers.get(question.key)
        item = {
            "question": question,
            "name": f"q_{question.key}",
            "answer": answer if answer is not None else "",
            "error": errors.get(question.key, ""),
            "file": files.get(question.key),
        }
        if question.kind == QuestionKind.PAYMENT:
            item["amount_cents"] = payment_amount(submission=submission, question=question)
            item["paid"] = submission_paid(submission)
            item["is_chosen"] = question.payment_mode == PaymentMode.CHOSEN
        sections[-1]["questions"].append(item)
    # Questions that depend on another appear once it is answered: tell the patient to save.
    has_conditions = any(question.condition_key for question in questions)
    return sections, has_conditions


@require_http_methods(["GET", "HEAD", "POST"])
@_form_page
def fill(request, submission, token):
    if not _is_verified(request, submission):
        return redirect("form:verify", token=token)
    if submission.status == SubmissionStatus.COMPLETE:
        return _render(request, submission, token, "complete.html")
    errors: dict = {}
    status = 200
    message = ""
    if request.method == "POST":
        action = request.POST.get("action", "save")
        errors = answers_save(
            submission=submission, data=request.POST, files=request.FILES, finish=action == "finish", ip_address=patient_ip(request)
        )
        if submission.status == SubmissionStatus.COMPLETE:
            return redirect("form:fill", token=token)
        if action == "pay" and not errors:
            try:
                start = payment_begin(
                    submission=submission, ip_address=patient_ip(request), locale=translation.get_language(),
                    # From SITE_URL, as the pay page's: never from the request's Host header.
                    return_url=settings.SITE_URL.rstrip("/") + reverse("form:payment_return", kwargs={"token": token}),
                )
            except FormError as error:
                message, status = error.message, 400
            except PaymentLinkUnavailable:
                return redirect("form:payment_return", token=token)
            except GatewayError:
                message, status = _("We could not reach the payment service. Nothing was charged. Please try again in a minute."), 502
            else:
                return redirect(start.redirect_url)
        elif action == "decline" and not errors:
            try:
                payment_decline(submission=submission, ip_address=patient_ip(request))
            except FormError as error:
                message, status = error.message, 400
        elif action == "save" and not errors:
            message = _("Your answers are saved. You can come back to this link later to finish.")
        if errors and status == 200:
            status = 400
    sections, has_conditions = _fields(submission, errors)
    return _render(
        request, submission, token, "fill.html",
        {"sections": sections, "has_conditions": has_conditions, "errors": errors, "message": message, "message_is_error": status != 200},
        status=status,
    )


@require_http_methods(["GET", "HEAD"])
@_form_page
def payment_return(request, submission, token):
    """Back from the hosted checkout (paid or not): record what the gateway says, back to the form."""
    if not _is_verified(request, submission):
        return redirect("form:verify", token=token)
    if payment_question(submission.version) is not None:
        payment_outcome_record(submission=submission)
    return redirect("form:fill", token=token)
