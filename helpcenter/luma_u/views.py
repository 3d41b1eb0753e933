"""Luma U's pages: the member's track with their progress, a lesson with its quiz, the quiz's
answers checked, the certificate (PDF), and the team's progress for managers and administrators.

Every page is the signed-in member's, in the request's organization (the session's membership,
never an id in the URL); a lesson of the other track is "not found". No page shows a patient.
"""

from __future__ import annotations

from django.http import Http404, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_POST, require_safe

from lumapay.audit import client_ip
from lumapay.dates import format_date
from lumapay.rate_limits import rate_limit_increment, rate_limit_reached
from org_profile.access import EVERYONE, MANAGERS, membership_required

from .certificate import CertificateUnavailable, certificate_filename, certificate_pdf
from .content import TRACKS
from .selectors import (
    certificate_by_code,
    lesson_html,
    lesson_progress_get,
    quiz_in_order,
    team_progress,
    track_of,
    track_progress,
)
from .services import LessonNotFound, QuizIncomplete, lesson_read_record, quiz_submit


@membership_required(roles=EVERYONE)
@require_safe
def track(request):
    progress = track_progress(membership=request.membership)
    return render(
        request,
        "helpcenter/luma_u/track.html",
        {"nav": "luma_u", "progress": progress, "is_manager": request.membership.is_manager_or_above},
    )


def _lesson_page(request, lesson_slug, *, result=None, error=None, chosen=None, status=200):
    membership = request.membership
    progress = track_progress(membership=membership)
    status_of = next((s for s in progress.lessons if s.lesson.slug == lesson_slug), None)
    if status_of is None:
        raise Http404("This lesson is not in your track.")
    lesson = status_of.lesson
    chosen = chosen or {}
    row = lesson_progress_get(membership=membership, lesson=lesson)
    attempt = row.attempts if row else 0
    following = progress.lessons[status_of.number] if status_of.number < progress.total else None
    return render(
        request,
        "helpcenter/luma_u/lesson.html",
        {
            "nav": "luma_u",
            "progress": progress,
            "status": status_of,
            "lesson": lesson,
            "lesson_html": lesson_html(lesson.body),
            "quiz": [
                (question, [(option_id, text, chosen.get(question.id) == option_id) for option_id, text in options])
                for question, options in quiz_in_order(membership=membership, lesson=lesson, attempt=attempt)
            ],
            "result": result,
            "error": error,
            "next_status": following,
        },
        status=status,
    )


@membership_required(roles=EVERYONE)
@require_safe
def lesson(request, slug):
    try:
        lesson_read_record(organization=request.organization, actor=request.user, lesson_slug=slug)
    except LessonNotFound as error:
        raise Http404(error.message) from error
    return _lesson_page(request, slug)


@membership_required(roles=EVERYONE)
@require_POST
def lesson_quiz(request, slug):
    # Only the chosen option ids are read from the form; the score is worked out here.
    answers = {
        key.removeprefix("q-"): value for key, value in request.POST.items() if key.startswith("q-")
    }
    try:
        result = quiz_submit(organization=request.organization, actor=request.user, lesson_slug=slug, answers=answers)
    except LessonNotFound as error:
        raise Http404(error.message) from error
    except QuizIncomplete as error:
        return _lesson_page(request, slug, error=error.message, chosen=answers, status=400)
    return _lesson_page(request, slug, result=result)


@membership_required(roles=EVERYONE)
@require_safe
def certificate(request):
    try:
        pdf = certificate_pdf(organization=request.organization, actor=request.user)
    except CertificateUnavailable as error:
        raise Http404(error.message) from error
    response = HttpResponse(pdf, content_type="application/pdf")
    filename = certificate_filename(track=track_of(request.membership))
    response["Content-Disposition"] = f'inline; filename="{filename}"'
    return response


@membership_required(roles=MANAGERS)
@require_safe
def team(request):
    return render(
        request,
        "helpcenter/luma_u/team.html",
        {"nav": "luma_u", "team": team_progress(organization=request.organization)},
    )


VERIFY_LOOKUPS_PER_HOUR = 30


@require_safe
def certificate_verify(request):
    """Public: anyone holding a certificate's verification code can check it is real (no sign-in;
    it shows what the certificate says and nothing more). Limited per address, as codes are."""
    code = request.GET.get("code", "").strip()[:40]
    context = {"code": code, "checked": bool(code)}
    status = 200
    if code:
        key = f"luma-u-verify:{client_ip(request) or 'unknown'}"
        if rate_limit_reached(key, limit=VERIFY_LOOKUPS_PER_HOUR):
            context["rate_limited"], status = True, 429
        else:
            rate_limit_increment(key, window_seconds=3600)
            completion = certificate_by_code(code)
            if completion is not None:
                user = completion.membership.user
                track = TRACKS.get(completion.track)
                context["certificate"] = {
                    "member_name": user.get_full_name() or user.email,
                    "organization_name": completion.organization.name,
                    "track_title": track.title if track else completion.track,
                    "completed_on": format_date(completion.completed_at, completion.organization.timezone),
                    "code": completion.verification_code,
                }
            else:
                status = 404
    return render(request, "helpcenter/luma_u/verify.html", context, status=status)
