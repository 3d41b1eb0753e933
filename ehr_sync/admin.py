"""Django admin for the EHR mirror. Patients can be corrected by operators (support edits) but
never deleted: payments, requests and the audit trail point at them. Appointments and balances are
what the EHR or an upload says; the next sync would overwrite an edit, so they are read-only."""

from django.contrib import admin

from lumapay.admin import ReadOnlyAdmin

from .models import Appointment, Balance, Patient


@admin.register(Patient)
class PatientAdmin(admin.ModelAdmin):
    list_display = ["last_name", "first_name", "organization", "date_of_birth", "email", "preferred_language", "sms_consent"]
    list_filter = ["organization", "preferred_language", "sms_consent"]
    search_fields = ["last_name", "first_name", "email", "mobile_phone", "external_ehr_id"]
    list_select_related = ["organization"]
    readonly_fields = ["organization", "external_ehr_id", "created_at", "updated_at"]

    def has_add_permission(self, request):
        # Patients arrive from the EHR, an upload or the staff pages, each in its organization.
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(Appointment)
class AppointmentAdmin(ReadOnlyAdmin):
    list_display = ["starts_at", "patient", "organization", "location", "provider_name", "status", "copay_cents"]
    list_filter = ["organization", "status", "location"]
    search_fields = ["patient__last_name", "patient__first_name", "provider_name", "external_ehr_id"]
    list_select_related = ["organization", "patient", "location"]
    date_hierarchy = "starts_at"


@admin.register(Balance)
class BalanceAdmin(ReadOnlyAdmin):
    list_display = ["patient", "organization", "amount_due_cents", "currency", "as_of"]
    list_filter = ["organization"]
    search_fields = ["patient__last_name", "patient__first_name", "patient__external_ehr_id"]
    list_select_related = ["organization", "patient"]
