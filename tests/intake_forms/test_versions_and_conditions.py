"""Versions (a submission keeps the version it answered) and conditions applied on the server."""

import pytest

from intake_forms.models import QuestionKind, SubmissionStatus
from intake_forms.services import (
    FormError,
    answers_save,
    form_draft,
    form_publish,
    form_published_version,
    item_move,
    item_remove,
    question_add,
    submission_start,
    version_questions,
)

from .support import answers, form_make

pytestmark = pytest.mark.django_db

SMOKER = [
    {"kind": QuestionKind.SINGLE_CHOICE, "label": "Do you smoke?", "choices": "yes\nno", "required": "yes"},
    {"kind": QuestionKind.SHORT_TEXT, "label": "How many a day?", "required": "yes", "condition_on": "Do you smoke?", "condition_value": "yes"},
    {"kind": QuestionKind.EMAIL, "label": "E-mail"},
]


def test_a_submission_keeps_its_version_after_the_form_is_edited_and_published_again(organization, manager, patient):
    form = form_make(organization=organization, actor=manager, questions=SMOKER)
    first = form_published_version(form)
    submission = submission_start(form=form, patient=patient)

    draft = form_draft(form=form)
    assert draft.number == 2 and draft.pk != first.pk
    section = draft.sections.get()
    question_add(organization=organization, actor=manager, section=section, values={"kind": "date", "label": "Last visit"})
    item_remove(organization=organization, actor=manager, item=section.questions.get(label="E-mail"))
    form_publish(organization=organization, actor=manager, form=form)

    submission.refresh_from_db()
    assert submission.version_id == first.pk
    assert [q.label for q in version_questions(submission.version)] == ["Do you smoke?", "How many a day?", "E-mail"]
    assert [q.label for q in version_questions(form_published_version(form))] == ["Do you smoke?", "How many a day?", "Last visit"]
    # The question keys stay the same across versions (conditions keep pointing at the right one).
    assert {q.key for q in version_questions(first)} & {q.key for q in version_questions(form_published_version(form))}
    assert submission_start(form=form, patient=patient).version.number == 2


def test_a_published_version_cannot_be_changed(organization, manager):
    form = form_make(organization=organization, actor=manager, questions=SMOKER)
    published = form_published_version(form)
    with pytest.raises(FormError):
        question_add(organization=organization, actor=manager, section=published.sections.get(), values={"kind": "date", "label": "X"})
    with pytest.raises(FormError):
        item_remove(organization=organization, actor=manager, item=published.sections.get())


def test_reordering_questions(organization, manager):
    form = form_make(organization=organization, actor=manager, questions=SMOKER, publish=False)
    section = form_draft(form=form).sections.get()
    item_move(organization=organization, actor=manager, item=section.questions.get(label="E-mail"), direction="up")
    assert [q.label for q in section.questions.all()] == ["Do you smoke?", "E-mail", "How many a day?"]


def test_a_hidden_question_is_not_required_and_its_answer_is_dropped(organization, manager, patient):
    form = form_make(organization=organization, actor=manager, questions=SMOKER)
    submission = submission_start(form=form, patient=patient)

    errors = answers_save(submission=submission, data=answers(submission, {"Do you smoke?": "yes", "How many a day?": "10"}))
    assert errors == {}
    assert sorted(submission.answers.values()) == ["10", "yes"]

    # Now "no": "How many a day?" is hidden, its answer dropped (whatever the browser sent) and not required.
    errors = answers_save(
        submission=submission, data=answers(submission, {"Do you smoke?": "no", "How many a day?": "20"}), finish=True
    )
    assert errors == {}
    assert list(submission.answers.values()) == ["no"]
    assert submission.status == SubmissionStatus.COMPLETE


def test_a_shown_required_question_must_be_answered(organization, manager, patient):
    form = form_make(organization=organization, actor=manager, questions=SMOKER)
    submission = submission_start(form=form, patient=patient)
    errors = answers_save(submission=submission, data=answers(submission, {"Do you smoke?": "yes", "E-mail": "not-an-email"}), finish=True)
    keys = {q.label: q.key for q in version_questions(submission.version)}
    assert set(errors) == {keys["How many a day?"], keys["E-mail"]}
    assert submission.status == SubmissionStatus.IN_PROGRESS


def test_a_consent_needs_agreement_and_a_typed_signature(organization, manager, patient):
    form = form_make(organization=organization, actor=manager, questions=[{"kind": "consent", "label": "I consent to treatment", "required": "yes"}])
    submission = submission_start(form=form, patient=patient)
    key = version_questions(submission.version)[0].key
    assert answers_save(submission=submission, data={f"q_{key}": "yes", f"q_{key}_signature": ""}, finish=True)
    assert answers_save(submission=submission, data={f"q_{key}": "yes", f"q_{key}_signature": "Ana Pérez"}, finish=True) == {}
    assert submission.answers[key] == {"agreed": True, "signature": "Ana Pérez"}


def test_publishing_refuses_a_condition_on_a_question_that_comes_after_it(organization, manager):
    # Moved above the question it depends on, "How many a day?" would be hidden for good.
    form = form_make(organization=organization, actor=manager, questions=SMOKER, publish=False)
    section = form_draft(form=form).sections.get()
    item_move(organization=organization, actor=manager, item=section.questions.get(label="How many a day?"), direction="up")

    with pytest.raises(FormError, match="depends on a question that is not before it"):
        form_publish(organization=organization, actor=manager, form=form)

    item_move(organization=organization, actor=manager, item=section.questions.get(label="How many a day?"), direction="down")
    form_publish(organization=organization, actor=manager, form=form)


def test_the_payment_question_cannot_depend_on_an_answer(organization, manager):
    with pytest.raises(FormError, match="asked of everyone"):
        form_make(organization=organization, actor=manager, publish=False, questions=[
            {"kind": QuestionKind.SINGLE_CHOICE, "label": "Insured?", "choices": "yes\nno"},
            {"kind": "payment", "label": "Your copay", "payment_mode": "fixed", "amount": "20",
             "condition_on": "Insured?", "condition_value": "no"},
        ])  # fmt: skip
