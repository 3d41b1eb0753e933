"""Luma U (issue 13): the track each role takes, quizzes scored on the server with retries,
progress per membership, the certificate read back from its PDF, the team's progress for
managers and administrators only, and one clinic never seeing another's progress."""

from __future__ import annotations

import datetime
import io
import re

import pytest
from django.urls import reverse
from django.utils.html import escape
from pypdf import PdfReader

from helpcenter.luma_u.content import MANAGERS_TRACK, STAFF_TRACK, TRACKS
from helpcenter.luma_u.models import LessonProgress, TrackCompletion
from helpcenter.luma_u.selectors import lesson_html, quiz_in_order, track_progress
from helpcenter.luma_u.services import QuizIncomplete, quiz_submit
from helpcenter.luma_u.certificate import CertificateUnavailable, certificate_pdf
from org_profile.enums import Role
from org_profile.models import Membership
from tests.factories import MembershipFactory, OrganizationFactory, UserFactory

pytestmark = pytest.mark.django_db

TRACK_URL = reverse("helpcenter:luma_u:track")
TEAM_URL = reverse("helpcenter:luma_u:team")
CERTIFICATE_URL = reverse("helpcenter:luma_u:certificate")


def lesson_url(lesson):
    return reverse("helpcenter:luma_u:lesson", args=[lesson.slug])


def quiz_url(lesson):
    return reverse("helpcenter:luma_u:lesson_quiz", args=[lesson.slug])


def right_answers(lesson):
    return {f"q-{question.id}": question.correct for question in lesson.questions}


def wrong_answers(lesson):
    """The first question answered wrong, the others right."""
    answers = right_answers(lesson)
    first = lesson.questions[0]
    answers[f"q-{first.id}"] = next(option for option, _text in first.options if option != first.correct)
    return answers


def membership_of(user, organization):
    return Membership.objects.get(user=user, organization=organization)


def pass_track(user, organization, track):
    for lesson in track.lessons:
        quiz_submit(organization=organization, actor=user, lesson_slug=lesson.slug,
                    answers={key[2:]: value for key, value in right_answers(lesson).items()})


def pdf_lines(pdf: bytes) -> list[str]:
    assert pdf.startswith(b"%PDF-")
    return [line.strip() for page in PdfReader(io.BytesIO(pdf)).pages for line in page.extract_text().splitlines()]


# --- The content -------------------------------------------------------------------------------

@pytest.mark.parametrize("track", TRACKS.values(), ids=lambda track: track.slug)
def test_each_track_has_6_to_10_lessons_of_2_to_4_questions_with_one_right_option(track):
    assert 6 <= len(track.lessons) <= 10
    for lesson in track.lessons:
        assert 2 <= len(lesson.questions) <= 4, lesson.slug
        assert len({question.id for question in lesson.questions}) == len(lesson.questions)
        for question in lesson.questions:
            assert question.correct in dict(question.options), (lesson.slug, question.id)
            assert len(question.options) >= 2 and question.explanation


def test_lesson_slugs_are_unique_across_the_tracks_since_progress_is_kept_by_slug():
    slugs = [lesson.slug for track in TRACKS.values() for lesson in track.lessons]
    assert len(slugs) == len(set(slugs))


def test_a_lesson_is_markdown_with_raw_html_escaped():
    html = lesson_html("**Re-send** <script>alert(1)</script>")
    assert "<strong>Re-send</strong>" in html
    assert "<script>" not in html and "&lt;script&gt;" in html


# --- Tracks by role ------------------------------------------------------------------------------

def test_sub_account_users_take_the_staff_track(client_for, staff_user):
    body = client_for(staff_user).get(TRACK_URL).content.decode()
    assert f"Luma U: {STAFF_TRACK.title}" in body
    assert lesson_url(STAFF_TRACK.lessons[0]) in body
    assert lesson_url(MANAGERS_TRACK.lessons[1]) not in body


@pytest.mark.parametrize("role", [Role.MANAGER, Role.ADMINISTRATOR])
def test_managers_and_administrators_take_the_managers_track(client_for, organization, role):
    user = MembershipFactory(organization=organization, role=role).user
    body = client_for(user).get(TRACK_URL).content.decode()
    assert f"Luma U: {MANAGERS_TRACK.title}" in body
    assert lesson_url(MANAGERS_TRACK.lessons[1]) in body
    assert lesson_url(STAFF_TRACK.lessons[0]) not in body


def test_a_lesson_of_the_other_track_is_not_found_and_records_nothing(client_for, staff_user):
    client = client_for(staff_user)
    lesson = MANAGERS_TRACK.lessons[1]
    assert client.get(lesson_url(lesson)).status_code == 404
    assert client.post(quiz_url(lesson), right_answers(lesson)).status_code == 404
    assert not LessonProgress.objects.exists()


def test_a_role_change_moves_to_the_other_track_and_keeps_the_progress(client_for, organization, staff_user):
    membership = membership_of(staff_user, organization)
    first = STAFF_TRACK.lessons[0]
    client = client_for(staff_user)
    client.post(quiz_url(first), right_answers(first))
    assert track_progress(membership=membership).passed_count == 1

    membership.role = Role.MANAGER
    membership.save()
    progress = track_progress(membership=membership)
    assert progress.track == MANAGERS_TRACK and progress.passed_count == 0
    assert f"Luma U: {MANAGERS_TRACK.title}" in client.get(TRACK_URL).content.decode()

    membership.role = Role.STAFF
    membership.save()
    progress = track_progress(membership=membership)
    assert progress.track == STAFF_TRACK and progress.passed_count == 1
    assert LessonProgress.objects.get(membership=membership, lesson=first.slug).passed_at is not None


# --- Lessons and quizzes -------------------------------------------------------------------------

def test_opening_a_lesson_records_it_read_once(client_for, organization, staff_user):
    lesson = STAFF_TRACK.lessons[1]
    client = client_for(staff_user)
    body = client.get(lesson_url(lesson)).content.decode()
    assert f"<h1>{lesson.title}</h1>" in body
    first = LessonProgress.objects.get(lesson=lesson.slug)
    assert first.read_at is not None and first.attempts == 0 and first.organization == organization

    client.get(lesson_url(lesson))
    assert LessonProgress.objects.get(lesson=lesson.slug).read_at == first.read_at
    assert "Read" in client.get(TRACK_URL).content.decode()


def test_a_wrong_answer_fails_the_quiz_and_explains_then_a_retry_passes(client_for, organization, staff_user):
    lesson = STAFF_TRACK.lessons[3]
    client = client_for(staff_user)
    response = client.post(quiz_url(lesson), wrong_answers(lesson))
    body = response.content.decode()

    total = len(lesson.questions)
    assert response.status_code == 200
    assert f"{total - 1} of {total} right." in body
    assert escape(lesson.questions[0].explanation) in body
    progress = LessonProgress.objects.get(lesson=lesson.slug)
    assert (progress.attempts, progress.last_score, progress.best_score, progress.passed_at) == (1, total - 1, total - 1, None)

    body = client.post(quiz_url(lesson), right_answers(lesson)).content.decode()
    assert f"All {total} answers right: quiz passed." in body
    progress.refresh_from_db()
    assert (progress.attempts, progress.last_score, progress.best_score) == (2, total, total)
    passed_at = progress.passed_at
    assert passed_at is not None

    # Taking it again and failing keeps it passed, with its first date.
    client.post(quiz_url(lesson), wrong_answers(lesson))
    progress.refresh_from_db()
    assert (progress.attempts, progress.last_score, progress.best_score, progress.passed_at) == (3, total - 1, total, passed_at)


def test_a_missing_or_made_up_answer_is_refused_and_counts_no_attempt(client_for, staff_user):
    lesson = STAFF_TRACK.lessons[0]
    client = client_for(staff_user)
    answers = right_answers(lesson)
    missing = dict(list(answers.items())[1:])
    made_up = {**answers, f"q-{lesson.questions[0].id}": "z"}
    for sent in (missing, made_up):
        response = client.post(quiz_url(lesson), sent)
        assert response.status_code == 400
        assert "Answer every question" in response.content.decode()
    assert LessonProgress.objects.filter(lesson=lesson.slug, attempts__gt=0).count() == 0


def test_the_client_cannot_send_a_score_or_a_passed_flag(client_for, staff_user):
    lesson = STAFF_TRACK.lessons[0]
    client_for(staff_user).post(quiz_url(lesson), {**wrong_answers(lesson), "score": "99", "passed": "1"})
    progress = LessonProgress.objects.get(lesson=lesson.slug)
    assert progress.passed_at is None and progress.last_score == len(lesson.questions) - 1


def test_questions_are_shuffled_on_the_server_the_same_for_a_reload_and_anew_after_an_attempt(organization, staff_user):
    membership = membership_of(staff_user, organization)
    lesson = max(STAFF_TRACK.lessons, key=lambda lesson: len(lesson.questions))

    def order(attempt, member=membership):
        return [(q.id, [o for o, _t in options]) for q, options in quiz_in_order(membership=member, lesson=lesson, attempt=attempt)]

    assert order(0) == order(0)
    orders = {repr(order(attempt)) for attempt in range(8)}
    assert len(orders) > 1
    # Every question and every option is still there.
    for attempt in range(8):
        assert sorted(q for q, _o in order(attempt)) == sorted(q.id for q in lesson.questions)


def test_the_quiz_page_shows_the_options_in_the_server_order(client_for, organization, staff_user):
    lesson = STAFF_TRACK.lessons[1]
    membership = membership_of(staff_user, organization)
    body = client_for(staff_user).get(lesson_url(lesson)).content.decode()
    expected = [text for _q, options in quiz_in_order(membership=membership, lesson=lesson, attempt=0) for _o, text in options]
    positions = [body.index(f"<span>{escape(text)}</span>") for text in expected]
    assert positions == sorted(positions)


def test_quiz_submit_refuses_an_unanswered_question_in_the_service_too(organization, staff_user):
    lesson = STAFF_TRACK.lessons[0]
    with pytest.raises(QuizIncomplete):
        quiz_submit(organization=organization, actor=staff_user, lesson_slug=lesson.slug, answers={})


# --- Progress, completion and the certificate ---------------------------------------------------

def test_passing_every_quiz_completes_the_track_once(client_for, organization, staff_user):
    client = client_for(staff_user)
    *before, last = STAFF_TRACK.lessons
    for lesson in before:
        client.post(quiz_url(lesson), right_answers(lesson))
    assert not TrackCompletion.objects.exists()
    assert f"{len(before)} of {len(STAFF_TRACK.lessons)} lessons passed" in client.get(TRACK_URL).content.decode()
    assert client.get(CERTIFICATE_URL).status_code == 404

    body = client.post(quiz_url(last), right_answers(last)).content.decode()
    assert "You completed the track." in body
    completion = TrackCompletion.objects.get()
    assert completion.track == STAFF_TRACK.slug
    assert re.fullmatch(r"LU-[A-Z2-9]{4}-[A-Z2-9]{4}-[A-Z2-9]{4}", completion.verification_code)

    client.post(quiz_url(last), right_answers(last))
    assert TrackCompletion.objects.get() == completion
    track_page = client.get(TRACK_URL).content.decode()
    assert "Download your certificate (PDF)" in track_page


def _dana_completed_the_staff_track():
    """Dana Reyes of a Los Angeles clinic, the staff track completed at 03:30 UTC on Mar 4, 2027:
    still Mar 3 there."""
    organization = OrganizationFactory(name="Riverside Family Medicine", timezone="America/Los_Angeles")
    user = UserFactory(first_name="Dana", last_name="Reyes")
    MembershipFactory(organization=organization, user=user, role=Role.STAFF)
    pass_track(user, organization, STAFF_TRACK)
    completion = TrackCompletion.objects.get()
    completion.completed_at = datetime.datetime(2027, 3, 4, 3, 30, tzinfo=datetime.UTC)
    completion.save()
    return user, completion


def test_the_certificate_names_the_member_track_organization_local_day_and_code(client_for, db):
    user, completion = _dana_completed_the_staff_track()

    response = client_for(user).get(CERTIFICATE_URL)
    assert response.status_code == 200
    assert response["Content-Type"] == "application/pdf"
    assert response["Content-Disposition"] == f'inline; filename="luma-u-certificate-{STAFF_TRACK.slug}.pdf"'
    text = "\n".join(pdf_lines(response.content))
    assert "Certificate of completion" in text
    assert "Dana Reyes" in text
    assert "of Riverside Family Medicine completed the track" in text
    assert STAFF_TRACK.title in text
    assert "Completed on Mar 3, 2027" in text
    assert f"Verification code: {completion.verification_code}" in text
    assert "Check it at http://testserver/help/luma-u/certificates/verify/" in text


def test_no_certificate_before_every_quiz_is_passed(organization, manager):
    *before, _last = MANAGERS_TRACK.lessons
    for lesson in before:
        quiz_submit(organization=organization, actor=manager, lesson_slug=lesson.slug,
                    answers={q.id: q.correct for q in lesson.questions})
    with pytest.raises(CertificateUnavailable):
        certificate_pdf(organization=organization, actor=manager)


def test_a_certificate_follows_the_current_track(client_for, organization, staff_user):
    pass_track(staff_user, organization, STAFF_TRACK)
    client = client_for(staff_user)
    assert client.get(CERTIFICATE_URL).status_code == 200
    membership = membership_of(staff_user, organization)
    membership.role = Role.MANAGER
    membership.save()
    assert client.get(CERTIFICATE_URL).status_code == 404


# --- The team's progress -------------------------------------------------------------------------

@pytest.mark.parametrize("role", [Role.MANAGER, Role.ADMINISTRATOR])
def test_managers_and_administrators_see_their_teams_progress(client_for, organization, staff_user, role):
    viewer = MembershipFactory(organization=organization, role=role).user
    lesson = STAFF_TRACK.lessons[0]
    client_for(staff_user).post(quiz_url(lesson), right_answers(lesson))
    pass_track(viewer, organization, MANAGERS_TRACK)

    body = client_for(viewer).get(TEAM_URL).content.decode()
    assert staff_user.email in body and viewer.email in body
    assert f"1 of {len(STAFF_TRACK.lessons)}" in body
    assert f"{len(MANAGERS_TRACK.lessons)} of {len(MANAGERS_TRACK.lessons)}" in body
    assert STAFF_TRACK.title in body and MANAGERS_TRACK.title in body
    assert "Your team's progress" in client_for(viewer).get(TRACK_URL).content.decode()


def test_sub_account_users_see_only_their_own_progress(client_for, staff_user):
    client = client_for(staff_user)
    assert client.get(TEAM_URL).status_code == 403
    assert TEAM_URL not in client.get(TRACK_URL).content.decode()


def test_anonymous_visitors_go_to_the_sign_in_page(client):
    for url in (TRACK_URL, TEAM_URL, CERTIFICATE_URL, lesson_url(STAFF_TRACK.lessons[0])):
        response = client.get(url)
        assert response.status_code == 302 and "/accounts/login/" in response["Location"]


# --- Tenant isolation ----------------------------------------------------------------------------

def test_another_clinics_members_and_progress_stay_out_of_sight(client_for, organization, other_organization, manager):
    outsider = MembershipFactory(organization=other_organization, role=Role.STAFF).user
    pass_track(outsider, other_organization, STAFF_TRACK)

    body = client_for(manager).get(TEAM_URL).content.decode()
    assert outsider.email not in body
    assert manager.email in body


def test_progress_belongs_to_the_membership_in_the_current_organization(client_for, organization, other_organization):
    user = UserFactory()
    MembershipFactory(organization=organization, user=user, role=Role.STAFF)
    MembershipFactory(organization=other_organization, user=user, role=Role.STAFF)
    pass_track(user, other_organization, STAFF_TRACK)

    home = membership_of(user, organization)
    assert track_progress(membership=home).passed_count == 0
    # Signed in, the session's organization is the first membership's; its pages show no progress
    # from the other clinic, and no certificate.
    client = client_for(user)
    session = client.session
    session["current_organization_id"] = organization.pk
    session.save()
    assert f"0 of {len(STAFF_TRACK.lessons)} lessons passed" in client.get(TRACK_URL).content.decode()
    assert client.get(CERTIFICATE_URL).status_code == 404


def test_the_header_links_to_luma_u_for_every_role(client_for, administrator, manager, staff_user):
    for user in (administrator, manager, staff_user):
        body = client_for(user).get(reverse("transactions:dashboard")).content.decode()
        assert f'<a href="{TRACK_URL}" >Luma U</a>' in body


def test_the_database_hides_another_clinics_progress_rows(organization, other_organization):
    from lumapay.tenant_rls import organization_scope

    insider = MembershipFactory(organization=organization, role=Role.STAFF).user
    outsider = MembershipFactory(organization=other_organization, role=Role.STAFF).user
    pass_track(insider, organization, STAFF_TRACK)
    pass_track(outsider, other_organization, STAFF_TRACK)

    with organization_scope(organization.pk):
        # No organization filter here: row-level security adds it.
        assert set(LessonProgress.objects.values_list("organization_id", flat=True)) == {organization.pk}
        assert list(TrackCompletion.objects.values_list("organization_id", flat=True)) == [organization.pk]


VERIFY_URL = "/help/luma-u/certificates/verify/"


def test_anyone_checks_a_certificate_by_its_code_without_signing_in(client, db):
    _user, completion = _dana_completed_the_staff_track()

    assert client.get(VERIFY_URL).status_code == 200
    # As printed, or typed in lower case without the dashes.
    for typed in (completion.verification_code, completion.verification_code.lower().replace("-", " ")):
        response = client.get(VERIFY_URL, {"code": typed})
        page = response.content.decode()
        assert response.status_code == 200 and "This certificate is real." in page
        assert "Dana Reyes" in page and "Riverside Family Medicine" in page and STAFF_TRACK.title in page
        assert "Mar 3, 2027" in page

    response = client.get(VERIFY_URL, {"code": "LU-AAAA-BBBB-CCCC"})
    assert response.status_code == 404 and "No Luma U certificate has the code" in response.content.decode()
    assert "Dana Reyes" not in response.content.decode()


def test_checking_codes_is_limited_per_address(client, db, settings):
    for _ in range(30):
        assert client.get(VERIFY_URL, {"code": "LU-AAAA-BBBB-CCCC"}).status_code == 404
    response = client.get(VERIFY_URL, {"code": "LU-AAAA-BBBB-CCCC"})
    assert response.status_code == 429 and "Too many codes" in response.content.decode()
