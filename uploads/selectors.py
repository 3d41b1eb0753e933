"""Reads of the Upload Center, always within one organization: another clinic's upload is None
(the view answers 404)."""

from __future__ import annotations

from django.db.models import QuerySet

from ehr_sync.models import Patient

from .enums import UploadStatus
from .models import Upload

HISTORY_PAGE_SIZE = 25
# Fields a page shows; the file's content is never read by a page.
_LISTED = ("content",)


def uploads_history(*, organization) -> QuerySet[Upload]:
    """Every upload of the organization, newest first, with who sent it and its run's counts."""
    return (
        Upload.objects.filter(organization=organization)
        .select_related("uploaded_by", "import_run")
        .defer(*_LISTED, "problems")
        .order_by("-uploaded_at", "-id")
    )


def upload_get(*, organization, pk: int) -> Upload | None:
    return (
        Upload.objects.filter(organization=organization, pk=pk)
        .select_related("uploaded_by", "imported_by", "import_run", "organization")
        .defer(*_LISTED)
        .first()
    )


def upload_earlier_import(*, upload: Upload) -> Upload | None:
    """The first import of the same file (same content) in the organization, if any."""
    return (
        Upload.objects.filter(
            organization_id=upload.organization_id, sha256=upload.sha256, kind=upload.kind, status=UploadStatus.IMPORTED
        )
        .exclude(pk=upload.pk)
        .select_related("imported_by")
        .defer(*_LISTED, "problems")
        .order_by("finished_at", "id")
        .first()
    )


def upload_patient_ids(*, upload: Upload) -> list[int]:
    """The stored patients the upload's listed problems are about (for the PHI access log)."""
    external_ids = {problem.get("patient") for problem in upload.problems if problem.get("patient")}
    if not external_ids:
        return []
    return list(
        Patient.objects.filter(organization_id=upload.organization_id, external_ehr_id__in=external_ids).values_list(
            "pk", flat=True
        )
    )


def upload_percent(upload: Upload) -> int:
    """How far the import of the valid rows is, in percent."""
    if upload.status == UploadStatus.IMPORTED:
        return 100
    if not upload.valid_rows:
        return 0
    return min(100, round(100 * upload.progress_rows / upload.valid_rows))
