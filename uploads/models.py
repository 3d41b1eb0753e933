from django.conf import settings
from django.db import models
from django.utils import timezone

from .enums import ImportMode, UploadStatus
from .file_reading import UploadKind


class Upload(models.Model):
    """One file a clinic uploaded: previewed, then imported (all or nothing, or its valid rows)
    or discarded. One per file sent; the same file sent twice is two uploads with the same
    ``sha256``, and importing it again changes nothing.

    The file itself is kept in PostgreSQL (``content``), not on the web server's disk: the import
    runs in a Celery worker that may be on another host, and PostgreSQL is the one store both
    share (object storage would do too, but none is configured for the app today). Once imported
    or discarded the content is erased (``content_erased_at``): the records are in the mirror and
    every rejected row is in ``problems``, so keeping a second copy of patients' data has no use.
    A failed import keeps it, so the import can be tried again.
    """

    organization = models.ForeignKey("org_profile.Organization", on_delete=models.PROTECT, related_name="uploads")
    kind = models.CharField(max_length=20, choices=UploadKind.choices)
    file_name = models.CharField(max_length=255)
    sha256 = models.CharField(max_length=64)
    size_bytes = models.PositiveIntegerField()
    content = models.BinaryField(editable=False)
    content_erased_at = models.DateTimeField(null=True, blank=True)
    uploaded_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    uploaded_at = models.DateTimeField(default=timezone.now)
    # The moment the file's records carry (``source_updated_at``): when it was first uploaded. The
    # same file uploaded again keeps the first upload's moment, so importing it again is a no-op.
    records_as_of = models.DateTimeField()
    status = models.CharField(max_length=12, choices=UploadStatus.choices, default=UploadStatus.PREVIEWED)
    mode = models.CharField(max_length=16, choices=ImportMode.choices, blank=True)
    rows = models.PositiveIntegerField(default=0)
    rows_with_problems = models.PositiveIntegerField(default=0)
    # Every problem, by row: [{"row", "column", "value", "reason", "patient"}] ("patient": the
    # row's patient id in the EHR, to log who was shown). The preview's, then the import's.
    problems = models.JSONField(default=list, blank=True)
    progress_rows = models.PositiveIntegerField(default=0)
    import_run = models.ForeignKey(
        "ehr_sync.ImportRun", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    imported_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    finished_at = models.DateTimeField(null=True, blank=True)
    error = models.TextField(blank=True)

    class Meta:
        ordering = ["-uploaded_at", "-id"]
        indexes = [
            models.Index(fields=["organization", "-uploaded_at", "-id"], name="upload_org_time"),
            models.Index(fields=["organization", "sha256"], name="upload_org_sha256"),
        ]

    def __str__(self) -> str:
        return f"{self.file_name} ({self.get_kind_display()})"

    @property
    def valid_rows(self) -> int:
        return max(self.rows - self.rows_with_problems, 0)

    @property
    def has_whole_file_problems(self) -> bool:
        return any(problem.get("row") is None for problem in self.problems)
