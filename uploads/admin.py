from django.contrib import admin

from .models import Upload


@admin.register(Upload)
class UploadAdmin(admin.ModelAdmin):
    """Operators see who uploaded what and what became of it; never the file, its name
    or its rows (a file's name can name a patient)."""

    list_display = ("uploaded_at", "organization", "kind", "status", "rows", "rows_with_problems", "uploaded_by")
    list_filter = ("status", "kind")
    fields = (
        "organization", "kind", "sha256", "size_bytes", "uploaded_by", "uploaded_at", "status",
        "mode", "rows", "rows_with_problems", "progress_rows", "import_run", "imported_by", "finished_at",
        "content_erased_at", "error",
    )
    readonly_fields = fields

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False
