from django.contrib import admin

from .models import AuditEvent


class ReadOnlyAdmin(admin.ModelAdmin):
    """For rows that are the record itself (ledger, audit, gateway events) or a cache derived from
    it: operators may look, never add, change or delete."""

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def get_readonly_fields(self, request, obj=None):
        return [field.name for field in self.model._meta.fields]


@admin.register(AuditEvent)
class AuditEventAdmin(ReadOnlyAdmin):
    list_display = ["created_at", "organization", "action", "actor_type", "actor_user", "patient_id", "transaction_id"]
    list_filter = ["organization", "actor_type", "action"]
    search_fields = ["action", "actor_user__email", "=transaction__id", "=payment_request__id", "=patient__id"]
    list_select_related = ["organization", "actor_user"]
    date_hierarchy = "created_at"
    # The audit log grows without bound: skip the second count(*) over the whole table.
    show_full_result_count = False
