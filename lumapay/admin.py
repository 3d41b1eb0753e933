from django.contrib import admin
from django.contrib.admin.utils import unquote

from .models import AuditEvent, PhiAccess
from .phi_access import phi_access_record


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


class PhiAccessAdminMixin:
    """For the admin of a model that shows patients: every list page and every object page an
    operator opens (or saves) is recorded in the PHI access log, like a staff page.

    ``phi_patient_field`` is the lookup from the row to its patient's id ("patient",
    "transaction__patient"; "id" for the patient model itself). The row has an ``organization``.
    """

    phi_patient_field = "patient"

    def _phi_record(self, request, pks) -> None:
        pairs = self.model._default_manager.filter(pk__in=list(pks)).values_list(
            "organization_id", self.phi_patient_field
        )
        phi_access_record(request=request, patients=list(pairs), is_operator=True)

    def changelist_view(self, request, extra_context=None):
        response = super().changelist_view(request, extra_context)
        context = getattr(response, "context_data", None) or {}
        changelist = context.get("cl")
        if changelist is not None:
            self._phi_record(request, [obj.pk for obj in changelist.result_list])
        return response

    def changeform_view(self, request, object_id=None, form_url="", extra_context=None):
        response = super().changeform_view(request, object_id, form_url, extra_context)
        if object_id is not None and response.status_code in (200, 302):
            self._phi_record(request, [unquote(object_id)])
        return response

    def history_view(self, request, object_id, extra_context=None):
        response = super().history_view(request, object_id, extra_context)
        if response.status_code == 200:
            self._phi_record(request, [unquote(object_id)])
        return response


@admin.register(AuditEvent)
class AuditEventAdmin(PhiAccessAdminMixin, ReadOnlyAdmin):
    list_display = ["created_at", "organization", "action", "actor_type", "actor_user", "patient_id", "transaction_id"]
    list_filter = ["organization", "actor_type", "action"]
    search_fields = ["action", "actor_user__email", "=transaction__id", "=payment_request__id", "=patient__id"]
    list_select_related = ["organization", "actor_user"]
    date_hierarchy = "created_at"
    # The audit log grows without bound: skip the second count(*) over the whole table.
    show_full_result_count = False


@admin.register(PhiAccess)
class PhiAccessAdmin(ReadOnlyAdmin):
    list_display = ["accessed_at", "organization", "actor_user", "is_operator", "page", "patient_count", "ip_address"]
    list_filter = ["organization", "is_operator"]
    search_fields = ["actor_user__email", "page"]
    list_select_related = ["organization", "actor_user"]
    date_hierarchy = "accessed_at"
    show_full_result_count = False
