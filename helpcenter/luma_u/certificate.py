"""The Luma U completion certificate as a PDF, made with WeasyPrint from one HTML template (as the
receipt is: transactions/services/receipt_documents.py).

It names the member, the track, the organization, the day the track was completed in the
organization's time zone, and the verification code kept with the completion. There is one only
when every lesson of the member's current track has its quiz passed.
"""

from __future__ import annotations

from django.conf import settings
from django.template.loader import render_to_string
from django.urls import reverse

from lumapay.dates import format_date
from lumapay.errors import ApplicationError
from org_profile.access import staff_access
from org_profile.models import Organization

from .content import Track
from .models import LessonProgress
from .selectors import track_progress
from .services import track_completion_record


class CertificateUnavailable(ApplicationError):
    """The member has not passed every quiz of their track yet."""


def certificate_context(*, organization: Organization, actor) -> dict:
    membership = staff_access(organization=organization, actor=actor)
    progress = track_progress(membership=membership)
    if not progress.complete:
        raise CertificateUnavailable("Pass every lesson's quiz of your track to get its certificate.")
    # A track completed before the completion row existed (or content that shrank) still gets one.
    completion = progress.completion or track_completion_record(
        membership=membership, when=max_passed_at(membership=membership)
    )
    user = membership.user
    return {
        "member_name": user.get_full_name() or user.email,
        "track": progress.track,
        "organization_name": organization.name,
        "completed_on": format_date(completion.completed_at, organization.timezone),
        "verification_code": completion.verification_code,
        "verify_url": settings.SITE_URL + reverse("helpcenter:luma_u:certificate_verify"),
        "lesson_count": progress.total,
    }


def max_passed_at(*, membership):
    return (
        LessonProgress.objects.filter(organization_id=membership.organization_id, membership=membership, passed_at__isnull=False)
        .order_by("-passed_at")
        .values_list("passed_at", flat=True)
        .first()
    )


def certificate_html(*, organization: Organization, actor) -> str:
    return render_to_string("helpcenter/luma_u/certificate_pdf.html", certificate_context(organization=organization, actor=actor))


def certificate_pdf(*, organization: Organization, actor) -> bytes:
    """The certificate (letter, landscape). Raises ``CertificateUnavailable`` before completion."""
    from weasyprint import HTML  # on first use, as receipts do

    return HTML(string=certificate_html(organization=organization, actor=actor)).write_pdf()


def certificate_filename(*, track: Track) -> str:
    return f"luma-u-certificate-{track.slug}.pdf"
