"""A submission as staff read it (page and PDF, WeasyPrint): each question of the version the
patient answered, with the answer, the signature of a consent, files, and the payment."""

from __future__ import annotations

from django.template.loader import render_to_string

from .models import FormSubmission, QuestionKind
from .services import version_questions, visible_questions


def submission_context(submission: FormSubmission) -> dict:
    questions = version_questions(submission.version)
    shown = visible_questions(questions, submission.answers)
    files = {file.question_key: file for file in submission.files.all()}
    rows = []
    for question in shown:
        answer = submission.answers.get(question.key)
        if question.kind == QuestionKind.CHECKBOXES:
            answer = ", ".join(answer or [])
        elif question.kind == QuestionKind.CONSENT:
            answer = answer or {}
        rows.append({"question": question, "answer": answer, "file": files.get(question.key)})
    return {
        "submission": submission,
        "patient": submission.patient,
        "rows": rows,
        "transaction": submission.payment_transaction,
    }


def submission_html(submission: FormSubmission) -> str:
    return render_to_string("intake_forms/submission_pdf.html", submission_context(submission))


def submission_pdf(submission: FormSubmission) -> bytes:
    from weasyprint import HTML

    return HTML(string=submission_html(submission)).write_pdf()
