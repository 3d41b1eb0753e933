"""What can be done with intake forms: building and publishing them (managers and administrators),
sending one to a patient, and a patient answering it through its signed link, paying its payment
question on the gateway's hosted checkout (through ``transactions.services.payments``, so the pay
page's locking, resuming and idempotency apply: a double submit gets one checkout and one charge).

Hidden questions (a condition not met) are never required and their answers are dropped, here on
the server, whatever the browser sent.
"""

from __future__ import annotations

import datetime
import re

from django.conf import settings
from django.core import signing
from django.db import transaction as db_transaction
from django.db.models import Max
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone, translation
from django.utils.translation import gettext as _

from lumapay.audit import audit_event_record
from lumapay.enums import AuditAction
from lumapay.errors import ApplicationError
from lumapay.models import ActorType, sms_opted_out
from lumapay.rate_limits import rate_limit_increment, rate_limit_reached
from org_profile.access import MANAGERS, staff_access
from transactions.enums import DeliveryChannel, MessagePurpose, PaymentRequestKind, PaymentRequestStatus
from transactions.models import PaymentRequest, PaymentRequestDelivery
from transactions.locks import payment_request_lock
from transactions.services.patient_messages import patient_message_owe
from transactions.services.payments import (
    checkout_begin,
    checkout_outcome_record,
    payment_request_checkout_close,
    payment_request_checkout_open,
    payment_request_state,
)

from .models import (
    FormFile,
    FormQuestion,
    FormSection,
    FormSubmission,
    FormVersion,
    IntakeForm,
    PaymentMode,
    QuestionKind,
    SubmissionStatus,
)

_SALT = "lumapay.intake-form-link"
FILE_MAX_BYTES = 10 * 1024 * 1024
# Type by content: the first bytes of the files a patient may upload (a photo of an insurance card,
# a referral letter). The file name's extension is not trusted.
FILE_SIGNATURES = (
    (b"%PDF-", "application/pdf"),
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
)
CHOICE_KINDS = (QuestionKind.SINGLE_CHOICE, QuestionKind.CHECKBOXES)
ADDRESS_WINDOW_SECONDS = 3600


class FormError(ApplicationError):
    pass


# -- building (managers and administrators) -------------------------------------------------------


def _manager(organization, actor):
    staff_access(organization=organization, actor=actor, roles=MANAGERS)


def form_create(*, organization, actor, title: str) -> IntakeForm:
    _manager(organization, actor)
    title = (title or "").strip()
    if not title:
        raise FormError("Enter the form's title.")
    with db_transaction.atomic():
        form = IntakeForm.objects.create(organization=organization, title=title[:120], created_by=actor)
        FormVersion.objects.create(organization=organization, form=form, number=1)
    return form


def form_published_version(form: IntakeForm) -> FormVersion | None:
    return form.versions.filter(published_at__isnull=False).order_by("-number").first()


def form_draft(*, form: IntakeForm) -> FormVersion:
    """The form's draft, or a new one copied from the latest published version (which never
    changes again: editing a published form makes a new version)."""
    draft = form.versions.filter(published_at__isnull=True).first()
    if draft is not None:
        return draft
    with db_transaction.atomic():
        IntakeForm.objects.select_for_update().get(pk=form.pk)
        draft = form.versions.filter(published_at__isnull=True).first()
        if draft is not None:
            return draft
        latest = form.versions.order_by("-number").first()
        draft = FormVersion.objects.create(organization=form.organization, form=form, number=latest.number + 1)
        for section in latest.sections.all():
            questions = list(section.questions.all())
            section.pk = None
            section.version = draft
            section.save()
            for question in questions:
                question.pk = None
                question.section = section
                question.save()
    return draft


def _editable(version: FormVersion) -> None:
    if not version.is_draft:
        raise FormError("A published version cannot be changed: edit the form's draft.")


def section_add(*, organization, actor, form: IntakeForm, title: str) -> FormSection:
    _manager(organization, actor)
    title = (title or "").strip()
    if not title:
        raise FormError("Enter the section's title.")
    draft = form_draft(form=form)
    order = (draft.sections.aggregate(top=Max("order"))["top"] or 0) + 1
    return FormSection.objects.create(organization=organization, version=draft, title=title[:120], order=order)


def _amount(value) -> int | None:
    if value in (None, ""):
        return None
    text = str(value).replace("$", "").replace(",", "").strip()
    if not re.fullmatch(r"\d{1,7}(\.\d{1,2})?", text):
        raise FormError("Enter amounts in dollars, such as 25 or 25.50.")
    dollars, _dot, cents = text.partition(".")
    cents_total = int(dollars) * 100 + int((cents + "00")[:2])
    if cents_total > settings.PAYMENT_REQUEST_MAX_CENTS:
        raise FormError(f"Enter at most ${settings.PAYMENT_REQUEST_MAX_CENTS / 100:,.2f}: the most one payment may take.")
    return cents_total


def question_add(*, organization, actor, section: FormSection, values: dict) -> FormQuestion:
    """Add a question at the end of a draft's section. ``values``: kind, label, help_text, required,
    choices (one per line), condition_key, condition_value, payment_mode, amount, min, max,
    declining_allowed."""
    _manager(organization, actor)
    _editable(section.version)
    kind = values.get("kind")
    if kind not in QuestionKind.values:
        raise FormError("Choose the kind of question.")
    label = (values.get("label") or "").strip()
    if not label:
        raise FormError("Enter the question.")
    choices = [line.strip() for line in (values.get("choices") or "").splitlines() if line.strip()]
    if kind in CHOICE_KINDS and not choices:
        raise FormError("List the options, one per line.")
    condition_key = (values.get("condition_key") or "").strip()
    if condition_key and not FormQuestion.objects.filter(section__version=section.version, key=condition_key).exists():
        raise FormError("The condition's question is not on this form.")
    if condition_key and kind == QuestionKind.PAYMENT:
        raise FormError("The payment question is asked of everyone: it cannot depend on an answer.")
    question = FormQuestion(
        organization=organization,
        section=section,
        kind=kind,
        label=label[:300],
        help_text=(values.get("help_text") or "").strip()[:500],
        required=bool(values.get("required")),
        choices=choices if kind in CHOICE_KINDS else [],
        condition_key=condition_key,
        condition_value=(values.get("condition_value") or "").strip()[:200] if condition_key else "",
    )
    if kind == QuestionKind.PAYMENT:
        if section.version.sections.filter(questions__kind=QuestionKind.PAYMENT).exists():
            raise FormError("A form has one payment question.")
        mode = values.get("payment_mode")
        if mode not in PaymentMode.values:
            raise FormError("Choose how the amount is set.")
        question.payment_mode = mode
        question.declining_allowed = bool(values.get("declining_allowed"))
        question.required = True
        if mode == PaymentMode.FIXED:
            question.amount_cents = _amount(values.get("amount"))
            if not question.amount_cents:
                raise FormError("Enter the amount to pay.")
        if mode == PaymentMode.CHOSEN:
            question.min_cents, question.max_cents = _amount(values.get("min")), _amount(values.get("max"))
            if not question.min_cents or not question.max_cents or question.min_cents > question.max_cents:
                raise FormError("Enter the smallest and the largest amount the patient may choose.")
    question.order = (section.questions.aggregate(top=Max("order"))["top"] or 0) + 1
    question.save()
    return question


def item_move(*, organization, actor, item, direction: str) -> None:
    """Move a section or a question of a draft one place up or down."""
    _manager(organization, actor)
    version = item.version if isinstance(item, FormSection) else item.section.version
    _editable(version)
    siblings = list(version.sections.all() if isinstance(item, FormSection) else item.section.questions.all())
    index = [sibling.pk for sibling in siblings].index(item.pk)
    other = index - 1 if direction == "up" else index + 1
    if 0 <= other < len(siblings):
        siblings[index], siblings[other] = siblings[other], siblings[index]
    with db_transaction.atomic():
        for order, sibling in enumerate(siblings, start=1):
            type(sibling).objects.filter(pk=sibling.pk).update(order=order)


def item_remove(*, organization, actor, item) -> None:
    _manager(organization, actor)
    version = item.version if isinstance(item, FormSection) else item.section.version
    _editable(version)
    item.delete()


def form_publish(*, organization, actor, form: IntakeForm, ip_address: str | None = None) -> FormVersion:
    """Publish the draft: patients get this version from now on; it never changes again."""
    _manager(organization, actor)
    with db_transaction.atomic():
        draft = form.versions.select_for_update().filter(published_at__isnull=True).first()
        if draft is None:
            raise FormError("There is nothing new to publish.")
        if not FormQuestion.objects.filter(section__version=draft).exists():
            raise FormError("Add at least one question before publishing.")
        _conditions_check(version_questions(draft))
        draft.published_at, draft.published_by = timezone.now(), actor
        draft.save(update_fields=["published_at", "published_by"])
        audit_event_record(
            organization=organization,
            action=AuditAction.FORM_PUBLISHED,
            actor_type=ActorType.STAFF,
            actor_user=actor,
            changes={"form": form.pk, "version": draft.number},
            ip_address=ip_address,
        )
    return draft


def _conditions_check(questions: list[FormQuestion]) -> None:
    """Every condition reads an answer given earlier on the form, so no question (the payment
    question least of all) is hidden for good by a reorder or a removal."""
    seen: set[str] = set()
    for question in questions:
        if question.condition_key:
            if question.kind == QuestionKind.PAYMENT:
                raise FormError("The payment question is asked of everyone: remove its condition before publishing.")
            if question.condition_key not in seen:
                raise FormError(
                    f"“{question.label}” depends on a question that is not before it on the form: move it below that "
                    "question, or remove its condition, before publishing."
                )
        seen.add(question.key)


def form_settings_update(*, organization, actor, form: IntakeForm, with_copay_request: bool) -> IntakeForm:
    _manager(organization, actor)
    form.with_copay_request = with_copay_request
    form.save(update_fields=["with_copay_request", "updated_at"])
    return form


# -- sending --------------------------------------------------------------------------------------


def form_link_token(submission: FormSubmission) -> str:
    return signing.Signer(salt=_SALT).sign(submission.public_id.hex)


def form_link_url(submission: FormSubmission) -> str:
    return settings.SITE_URL + reverse("form:verify", kwargs={"token": form_link_token(submission)})


def submission_from_token(token: str) -> FormSubmission | None:
    import uuid

    try:
        public_id = uuid.UUID(hex=signing.Signer(salt=_SALT).unsign(token))
    except (signing.BadSignature, ValueError):
        return None
    return (
        FormSubmission.objects.select_related("organization", "patient", "version__form", "payment_request")
        .filter(public_id=public_id)
        .first()
    )


def form_link_expired(submission: FormSubmission, *, now: datetime.datetime | None = None) -> bool:
    """An unfinished form's link works for ``INTAKE_FORM_LINK_TTL_DAYS`` from when it was sent (a
    forwarded or old message stops opening it); a completed one keeps showing its thank-you page."""
    if submission.status == SubmissionStatus.COMPLETE:
        return False
    lifetime = datetime.timedelta(days=settings.INTAKE_FORM_LINK_TTL_DAYS)
    return submission.created_at + lifetime <= (now or timezone.now())


def submission_start(*, form: IntakeForm, patient, appointment=None, sent_with=None, actor=None) -> FormSubmission:
    version = form_published_version(form)
    if version is None:
        raise FormError("Publish the form before sending it.")
    if patient.organization_id != form.organization_id:
        raise FormError("This patient is not one of this organization's patients.")
    question = payment_question(version)
    # A copay question on a form that goes with the copay request pays that request, from the
    # start: paid on the pay page (or held and captured), the form shows it paid and asks nothing.
    pays_the_copay_request = sent_with is not None and question is not None and question.payment_mode == PaymentMode.COPAY
    return FormSubmission.objects.create(
        organization=form.organization, version=version, patient=patient, appointment=appointment,
        sent_with=sent_with, created_by=actor, payment_request=sent_with if pays_the_copay_request else None,
    )


def form_send(*, organization, actor, form: IntakeForm, patient, channel: str, ip_address: str | None = None) -> FormSubmission:
    """Send a form by itself, by e-mail or SMS, to a patient of the organization (any member may)."""
    staff_access(organization=organization, actor=actor)
    destination = patient.email if channel == "email" else patient.mobile_phone
    if channel not in ("email", "sms") or not destination:
        raise FormError("The patient has no e-mail address or mobile phone for this.")
    if channel == "sms" and (not patient.sms_consent or sms_opted_out(destination) is not None):
        raise FormError("The patient has not agreed to get text messages, or replied STOP.")
    with db_transaction.atomic():
        submission = submission_start(form=form, patient=patient, actor=actor)
        audit_event_record(
            organization=organization, action=AuditAction.FORM_SENT, actor_type=ActorType.STAFF, actor_user=actor,
            patient=patient, changes={"form": form.pk, "version": submission.version.number, "channel": channel},
            ip_address=ip_address,
        )
        # Owed with the submission, sent through the patients' outbox once this commits: retried
        # with backoff, re-sent when stuck, refused for a number that replied STOP since.
        submission.link_delivery = patient_message_owe(
            organization_id=organization.pk, purpose=MessagePurpose.FORM_LINK, channel=channel, destination=destination,
        )
        submission.save(update_fields=["link_delivery"])
    return submission


_MESSAGE_TEMPLATES = "intake_forms/messages"


def form_link_message_render(delivery: PaymentRequestDelivery) -> tuple[str, str, str]:
    """The message with a form's link, in the patient's language: the clinic's name, the form's
    title and the link, nothing about the patient (the link opens behind the date-of-birth check)."""
    submission = FormSubmission.objects.select_related("organization", "patient", "version__form").get(link_delivery=delivery)
    organization = submission.organization
    context = {
        "clinic_name": organization.display_name,
        "form_title": submission.version.form.title,
        "link": form_link_url(submission),
        "support_phone": organization.support_phone,
        "support_email": organization.support_email,
    }
    with translation.override(submission.patient.preferred_language), timezone.override(organization.timezone):
        if delivery.channel == DeliveryChannel.SMS:
            return "", render_to_string(f"{_MESSAGE_TEMPLATES}/sms.txt", context), ""
        return tuple(
            render_to_string(f"{_MESSAGE_TEMPLATES}/{name}", context)
            for name in ("email_subject.txt", "email_body.txt", "email_body.html")
        )


def form_link_message_outcome(delivery: PaymentRequestDelivery, sent: bool, details: dict) -> None:
    """On the patient's history: the form's link went out, or why it did not."""
    submission = FormSubmission.objects.select_related("organization", "patient").get(link_delivery=delivery)
    audit_event_record(
        organization=submission.organization,
        action=AuditAction.FORM_LINK_DELIVERY_SENT if sent else AuditAction.FORM_LINK_DELIVERY_FAILED,
        actor_type=ActorType.SYSTEM, patient=submission.patient,
        changes={"form": submission.version.form_id, "delivery_id": delivery.pk, "channel": delivery.channel, **details},
    )


def copay_request_message_lines(payment_request: PaymentRequest) -> list[str]:
    """What the copay request's e-mail and text add when forms go with it: that the same link
    opens them (in the language active when called)."""
    titles = [
        submission.version.form.title
        for submission in FormSubmission.objects.filter(
            organization_id=payment_request.organization_id, sent_with=payment_request
        ).exclude(status=SubmissionStatus.COMPLETE).select_related("version__form")
    ]
    if not titles:
        return []
    return [translation.ngettext(
        "Please also fill in the form “%(titles)s” before your visit: the same link opens it.",
        "Please also fill in the forms “%(titles)s” before your visit: the same link opens them.",
        len(titles),
    ) % {"titles": "”, “".join(titles)}]


# -- the patient's date-of-birth check ------------------------------------------------------------


class FormLinkLocked(ApplicationError):
    pass


class FormLinkRateLimited(ApplicationError):
    pass


class FormDateOfBirthMismatch(ApplicationError):
    pass


def _address_key(ip_address: str) -> str:
    # The pay page's counter: wrong dates of birth count across pay and form links alike.
    return f"pay:dob-failures:{ip_address}"


def form_lock_remaining(submission: FormSubmission):
    until = submission.verification_locked_until
    now = timezone.now()
    return until - now if until and until > now else None


def form_link_verify(*, submission: FormSubmission, date_of_birth: datetime.date, ip_address: str | None) -> None:
    """The pay page's gate for a form link: ``PAY_LINK_MAX_FAILED_DOB_ATTEMPTS`` wrong answers lock
    the link for ``PAY_LINK_LOCKOUT_MINUTES``; too many from one address in an hour are refused."""
    outcome = None
    wrong = False
    with db_transaction.atomic():
        locked = FormSubmission.objects.select_for_update(of=("self",)).select_related("patient").get(pk=submission.pk)

        def record(action, changes):
            audit_event_record(
                organization=submission.organization, action=action, actor_type=ActorType.PATIENT,
                patient=locked.patient, changes={"submission": locked.pk, **changes}, ip_address=ip_address,
            )

        if form_lock_remaining(locked):
            outcome = FormLinkLocked(_("This link is locked."))
        elif ip_address and rate_limit_reached(_address_key(ip_address), limit=settings.PAY_PAGE_MAX_FAILED_DOB_ATTEMPTS_PER_ADDRESS):
            outcome = FormLinkRateLimited(_("Too many attempts from this address."))
        elif locked.patient.date_of_birth == date_of_birth:
            locked.failed_verification_count, locked.verification_locked_until = 0, None
            locked.save(update_fields=["failed_verification_count", "verification_locked_until"])
            record(AuditAction.FORM_LINK_VERIFICATION_PASSED, {})
        else:
            wrong = True
            count = locked.failed_verification_count + 1
            record(AuditAction.FORM_LINK_VERIFICATION_FAILED, {"failed_verification_count": count})
            if count >= settings.PAY_LINK_MAX_FAILED_DOB_ATTEMPTS:
                locked.failed_verification_count = 0
                locked.verification_locked_until = timezone.now() + datetime.timedelta(minutes=settings.PAY_LINK_LOCKOUT_MINUTES)
                record(AuditAction.FORM_LINK_LOCKED, {})
                outcome = FormLinkLocked(_("This link is locked."))
            else:
                locked.failed_verification_count = count
                outcome = FormDateOfBirthMismatch(_("That date of birth does not match our records."))
            locked.save(update_fields=["failed_verification_count", "verification_locked_until"])
    if wrong and ip_address:
        rate_limit_increment(_address_key(ip_address), window_seconds=ADDRESS_WINDOW_SECONDS)
    if outcome is not None:
        raise outcome


# -- answering ------------------------------------------------------------------------------------


def version_questions(version: FormVersion) -> list[FormQuestion]:
    return list(
        FormQuestion.objects.filter(section__version=version).select_related("section").order_by("section__order", "section__pk", "order", "pk")
    )


def _matches(answer, value: str) -> bool:
    if isinstance(answer, list):
        return value in answer
    return str(answer or "").strip().lower() == value.strip().lower()


def visible_questions(questions: list[FormQuestion], answers: dict) -> list[FormQuestion]:
    """The questions shown for these answers: a question whose condition is not met is hidden, and
    so is one that depends on a hidden question."""
    shown: dict[str, FormQuestion] = {}
    by_key = {question.key: question for question in questions}
    for question in questions:
        if question.condition_key:
            if question.condition_key not in shown and question.condition_key in by_key:
                continue
            if not _matches(answers.get(question.condition_key), question.condition_value):
                continue
        shown[question.key] = question
    return list(shown.values())


_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_PHONE = re.compile(r"^\+?[0-9 ().-]{7,20}$")


def _clean(question: FormQuestion, raw) -> tuple[object, str]:
    """The answer as kept, and an error message (empty when fine). ``raw`` is a string or a list."""
    kind = question.kind
    if kind == QuestionKind.CHECKBOXES:
        values = [value for value in (raw or []) if value in question.choices]
        return values, ""
    text = (raw[0] if isinstance(raw, list) and raw else raw or "")
    text = str(text).strip()[:5000]
    if not text:
        return "", ""
    if kind == QuestionKind.SINGLE_CHOICE and text not in question.choices:
        return "", _("Choose one of the options.")
    if kind == QuestionKind.EMAIL and not _EMAIL.match(text):
        return text, _("Enter an e-mail address, such as name@example.com.")
    if kind == QuestionKind.PHONE and not _PHONE.match(text):
        return text, _("Enter a phone number, such as (555) 123-4567.")
    if kind == QuestionKind.DATE:
        try:
            datetime.date.fromisoformat(text)
        except ValueError:
            return text, _("Enter a date, such as 2026-03-09.")
    return text, ""


def _answered(question: FormQuestion, submission: FormSubmission, answers: dict) -> bool:
    if question.kind == QuestionKind.PAYMENT:
        if submission_paid(submission) or (question.declining_allowed and submission.payment_declined):
            return True
        # Nothing to pay (no copay on the visit, a zero balance): nothing keeps the form from being
        # sent. A chosen amount is still the patient's to choose and pay.
        return question.payment_mode != PaymentMode.CHOSEN and submission.payment_request_id is None and not (
            payment_amount(submission=submission, question=question) or 0
        ) > 0
    if question.kind == QuestionKind.FILE:
        return submission.files.filter(question_key=question.key).exists()
    if question.kind == QuestionKind.CONSENT:
        consent = answers.get(question.key) or {}
        return bool(consent.get("agreed") and consent.get("signature"))
    return bool(answers.get(question.key))


def answers_save(*, submission: FormSubmission, data, files=None, finish: bool = False, ip_address: str | None = None) -> dict[str, str]:
    """Keep the patient's answers (progress is saved on every post; the patient may come back
    later), drop the answers of hidden questions, and complete the submission when ``finish`` and
    every visible required question is answered (the payment one paid, or declined where allowed).
    Returns the errors by question key."""
    errors: dict[str, str] = {}
    with db_transaction.atomic():
        locked = FormSubmission.objects.select_for_update(of=("self",)).get(pk=submission.pk)
        if locked.status == SubmissionStatus.COMPLETE:
            return {}
        questions = version_questions(locked.version)
        answers = dict(locked.answers)
        for question in questions:
            name = f"q_{question.key}"
            if question.kind in (QuestionKind.PAYMENT, QuestionKind.FILE):
                if question.kind == QuestionKind.FILE and files and files.get(name):
                    try:
                        form_file_add(submission=locked, question=question, upload=files[name])
                    except FormError as error:
                        errors[question.key] = error.message
                elif question.kind == QuestionKind.PAYMENT and question.payment_mode == PaymentMode.CHOSEN and name in data:
                    answers[question.key] = str(data.get(name, "")).strip()[:12]
                continue
            if question.kind == QuestionKind.CONSENT:
                if name in data or f"{name}_signature" in data:
                    answers[question.key] = {
                        "agreed": data.get(name) == "yes",
                        "signature": str(data.get(f"{name}_signature", "")).strip()[:120],
                    }
                continue
            if question.kind == QuestionKind.CHECKBOXES:
                if f"{name}_present" not in data:
                    continue
                raw = data.getlist(name) if hasattr(data, "getlist") else data.get(name, [])
            else:
                if name not in data:
                    continue
                raw = data.get(name)
            value, error = _clean(question, raw)
            answers[question.key] = value
            if error:
                errors[question.key] = error
        shown = visible_questions(questions, answers)
        shown_keys = {question.key for question in shown}
        # Hidden questions keep no answers (and their files go).
        answers = {key: value for key, value in answers.items() if key in shown_keys}
        locked.files.exclude(question_key__in=shown_keys).delete()
        locked.answers = answers
        locked.save(update_fields=["answers", "updated_at"])
        if finish:
            for question in shown:
                if question.required and not _answered(question, locked, answers) and question.key not in errors:
                    errors[question.key] = (
                        _("Pay, or decline, before you send the form.") if question.kind == QuestionKind.PAYMENT
                        else _("Answer this question.")
                    )
            if not errors:
                _complete(locked, ip_address=ip_address)
    submission.refresh_from_db()
    return errors


def _complete(locked: FormSubmission, *, ip_address: str | None) -> None:
    locked.status, locked.completed_at = SubmissionStatus.COMPLETE, timezone.now()
    fields = ["status", "completed_at", "updated_at"]
    if locked.payment_request_id and locked.payment_transaction_id is None:
        # Paid without coming back through the form (a closed tab, the pay page, a card on file):
        # the request's payment is the form's.
        paid = locked.payment_request.transactions.filter(charged_cents__gt=0).order_by("created_at", "id").first()
        if paid is not None:
            locked.payment_transaction = paid
            fields.append("payment_transaction")
    locked.save(update_fields=fields)
    audit_event_record(
        organization=locked.organization, action=AuditAction.FORM_COMPLETED, actor_type=ActorType.PATIENT,
        patient=locked.patient, payment_request=locked.payment_request, transaction=locked.payment_transaction,
        changes={"submission": locked.pk, "version": locked.version.number}, ip_address=ip_address,
    )


# -- files ----------------------------------------------------------------------------------------


def file_type_by_content(data: bytes) -> str | None:
    for signature, content_type in FILE_SIGNATURES:
        if data.startswith(signature):
            return content_type
    return None


def form_file_add(*, submission: FormSubmission, question: FormQuestion, upload) -> FormFile:
    if upload.size > FILE_MAX_BYTES:
        raise FormError(_("The file is larger than 10 MB. Send a smaller one."))
    data = upload.read(FILE_MAX_BYTES + 1)
    if len(data) > FILE_MAX_BYTES:
        raise FormError(_("The file is larger than 10 MB. Send a smaller one."))
    content_type = file_type_by_content(data)
    if content_type is None:
        raise FormError(_("Send a PDF, PNG or JPEG file."))
    submission.files.filter(question_key=question.key).delete()
    name = re.sub(r"[^\w.\- ]", "_", upload.name or "file")[:200]
    return FormFile.objects.create(
        organization=submission.organization, submission=submission, question_key=question.key,
        file_name=name, content_type=content_type, size=len(data), data=data,
    )


# -- the payment question -------------------------------------------------------------------------


def payment_question(version: FormVersion) -> FormQuestion | None:
    return FormQuestion.objects.filter(section__version=version, kind=QuestionKind.PAYMENT).first()


def payment_amount(*, submission: FormSubmission, question: FormQuestion) -> int | None:
    """What the payment question asks for now (None: nothing to pay, such as no copay on file)."""
    mode = question.payment_mode
    if mode == PaymentMode.FIXED:
        return question.amount_cents
    if mode == PaymentMode.COPAY:
        if submission.sent_with is not None:
            return submission.sent_with.amount_cents
        return submission.appointment.copay_cents if submission.appointment else None
    if mode == PaymentMode.BALANCE:
        balance = getattr(submission.patient, "balance", None)
        return balance.amount_due_cents if balance is not None else None
    if mode == PaymentMode.CHOSEN:
        chosen = _amount_or_none(submission.answers.get(question.key))
        if chosen is None or not (question.min_cents <= chosen <= question.max_cents):
            return None
        return chosen
    return None


def _amount_or_none(value) -> int | None:
    try:
        return _amount(value)
    except FormError:
        return None


def submission_paid(submission: FormSubmission) -> bool:
    request = submission.payment_request
    return request is not None and request.status == PaymentRequestStatus.PAID


def payment_begin(
    *, submission: FormSubmission, ip_address: str | None, locale: str, return_url: str
):
    """The payment question's hosted checkout. Under the submission's lock: its payment request
    is made once (the copay request the form came with, for a copay question) and
    ``checkout_begin`` resumes an open checkout, so a double submit makes one payment."""
    _payment_request_refresh(submission)
    with db_transaction.atomic():
        locked = FormSubmission.objects.select_for_update(of=("self",)).select_related(
            "patient", "sent_with", "appointment", "organization", "payment_request"
        ).get(pk=submission.pk)
        question = payment_question(locked.version)
        if question is None or locked.status == SubmissionStatus.COMPLETE:
            raise FormError(_("There is nothing to pay on this form."))
        if locked.payment_request is not None and locked.payment_request_id != locked.sent_with_id and payment_request_state(
            locked.payment_request
        ) in (PaymentRequestStatus.EXPIRED, PaymentRequestStatus.CANCELLED):
            # The form's own request ran out (a patient back weeks later): a new one replaces it.
            locked.payment_request = None
        if locked.payment_request is None:
            open_balance_request = (
                PaymentRequest.objects.filter(
                    organization=locked.organization, patient=locked.patient, kind=PaymentRequestKind.BALANCE,
                    status=PaymentRequestStatus.OPEN, expires_at__gt=timezone.now(),
                ).order_by("-created_at").first()
                if question.payment_mode == PaymentMode.BALANCE
                else None
            )
            if question.payment_mode == PaymentMode.COPAY and locked.sent_with is not None:
                locked.payment_request = locked.sent_with
            elif open_balance_request is not None:
                # The balance is asked for already (a balance request's link): the form pays that
                # request, so the patient can never pay the same balance twice.
                locked.payment_request = open_balance_request
            else:
                amount = payment_amount(submission=locked, question=question)
                if not amount or amount <= 0:
                    raise FormError(_("Choose an amount within the limits shown.") if question.payment_mode == PaymentMode.CHOSEN
                                    else _("There is nothing to pay on this form."))
                locked.payment_request = PaymentRequest.objects.create(
                    organization=locked.organization,
                    patient=locked.patient,
                    location=_location_of(locked),
                    appointment=locked.appointment,
                    kind=PaymentRequestKind.BALANCE if question.payment_mode == PaymentMode.BALANCE else PaymentRequestKind.COPAY,
                    # The form's title goes to the gateway as the item: no patient detail in it.
                    billing_item=locked.version.form.title[:120],
                    amount_cents=amount,
                    currency=locked.organization.currency,
                    expires_at=timezone.now() + datetime.timedelta(days=30),
                )
            locked.payment_declined = False
            locked.save(update_fields=["payment_request", "payment_declined", "updated_at"])
        payment_request = locked.payment_request
    return checkout_begin(
        payment_request=payment_request, ip_address=ip_address, locale=locale,
        success_url=return_url, cancel_url=return_url,
    )


def _payment_request_refresh(submission: FormSubmission) -> None:
    """A patient who left the checkout and chose another amount: the form's own open request
    takes the new amount, once any checkout still open at the gateway for the old one is closed
    (so the patient can never pay both)."""
    existing = submission.payment_request
    question = payment_question(submission.version)
    if (
        existing is None
        or question is None
        or question.payment_mode != PaymentMode.CHOSEN
        or existing.pk == submission.sent_with_id
        or payment_request_state(existing) != PaymentRequestStatus.OPEN
    ):
        return
    amount = payment_amount(submission=submission, question=question)
    if not amount or amount == existing.amount_cents:
        return
    payment_request_checkout_close(payment_request=existing)  # raises PaymentLinkUnavailable when paid
    with db_transaction.atomic():
        locked = payment_request_lock(payment_request_id=existing.pk)
        if locked.status == PaymentRequestStatus.OPEN and not payment_request_checkout_open(locked):
            locked.amount_cents = amount
            locked.save(update_fields=["amount_cents"])
    existing.refresh_from_db()


def _location_of(submission: FormSubmission):
    if submission.appointment is not None:
        return submission.appointment.location
    from org_profile.models import Location

    location = Location.objects.filter(organization=submission.organization, is_active=True).order_by("pk").first()
    if location is None:
        raise FormError(_("The clinic cannot take payments here yet. Contact the clinic."))
    return location


def payment_outcome_record(*, submission: FormSubmission) -> None:
    """Back from the hosted checkout: ask the gateway (as the pay page's confirmation does) and
    link the paid transaction to the submission."""
    request = submission.payment_request
    if request is None:
        return
    transactions = request.transactions.exclude(gateway_checkout_id="")
    paid = transactions.filter(charged_cents__gt=0).first()
    if paid is None:
        latest = transactions.order_by("-created_at", "-id").first()
        if latest is not None:
            from transactions.gateways.base import GatewayError

            try:
                checkout_outcome_record(transaction=latest)
            except GatewayError:
                pass
            paid = transactions.filter(charged_cents__gt=0).first()
    if paid is not None and submission.payment_transaction_id != paid.pk:
        FormSubmission.objects.filter(pk=submission.pk).update(payment_transaction=paid, updated_at=timezone.now())
    submission.refresh_from_db()
    submission.payment_request.refresh_from_db()


def payment_decline(*, submission: FormSubmission, ip_address: str | None) -> None:
    question = payment_question(submission.version)
    if question is None or not question.declining_allowed:
        raise FormError(_("This payment cannot be declined."))
    if submission_paid(submission):
        return
    FormSubmission.objects.filter(pk=submission.pk).update(payment_declined=True, updated_at=timezone.now())
    audit_event_record(
        organization=submission.organization, action=AuditAction.FORM_PAYMENT_DECLINED, actor_type=ActorType.PATIENT,
        patient=submission.patient, changes={"submission": submission.pk}, ip_address=ip_address,
    )
    submission.refresh_from_db()


# -- attached to the copay request before a visit -------------------------------------------------


def forms_attach_to_copay_request(payment_request: PaymentRequest) -> list[FormSubmission]:
    """A new automatic copay request: start a submission of each published form marked "with the
    copay request" (its pay page then links to the form)."""
    made = []
    for form in IntakeForm.objects.filter(organization_id=payment_request.organization_id, with_copay_request=True):
        if form_published_version(form) is None:
            continue
        made.append(submission_start(
            form=form, patient=payment_request.patient, appointment=payment_request.appointment, sent_with=payment_request,
        ))
    return made
