"""Django admin for the EHR mirror. Patients can be corrected by operators (support edits) but
never deleted: payments, requests and the audit trail point at them. Appointments and balances are
what the EHR or an upload says; the next sync would overwrite an edit, so they are read-only."""

from django.contrib import admin, messages

from lumapay.admin import PhiAccessAdminMixin, ReadOnlyAdmin
from lumapay.errors import ApplicationError

from .models import Appointment, Balance, Patient
from .services import PATIENT_EDITABLE_FIELDS, patient_update


@admin.register(Patient)
class PatientAdmin(PhiAccessAdminMixin, admin.ModelAdmin):
    phi_patient_field = "id"
    list_display = ["last_name", "first_name", "organization", "date_of_birth", "email", "preferred_language", "sms_consent"]
    list_filter = ["organization", "preferred_language", "sms_consent"]
    search_fields = ["last_name", "first_name", "email", "mobile_phone", "external_ehr_id"]
    list_select_related = ["organization"]
    readonly_fields = ["organization", "external_ehr_id", "sms_consent_at", "created_at", "updated_at"]

    def save_model(self, request, obj, form, change):
        # An operator's correction goes through the service staff edits use: validated, consent
        # kept in step, and an audit event with the old and new values (not only django_admin_log).
        data = {field: form.cleaned_data[field] for field in form.changed_data if field in PATIENT_EDITABLE_FIELDS}
        try:
            stored = patient_update(organization=obj.organization, actor=request.user, patient=obj, data=data)
        except ApplicationError as error:
            messages.error(request, f"Nothing was saved: {error.message}")
            return
        obj.refresh_from_db()
        obj.sms_consent_at = stored.sms_consent_at

    def has_add_permission(self, request):
        # Patients arrive from the EHR, an upload or the staff pages, each in its organization.
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(Appointment)
class AppointmentAdmin(PhiAccessAdminMixin, ReadOnlyAdmin):
    list_display = ["starts_at", "patient", "organization", "location", "provider_name", "status", "copay_cents"]
    list_filter = ["organization", "status", "location"]
    search_fields = ["patient__last_name", "patient__first_name", "provider_name", "external_ehr_id"]
    list_select_related = ["organization", "patient", "location"]
    date_hierarchy = "starts_at"


@admin.register(Balance)
class BalanceAdmin(PhiAccessAdminMixin, ReadOnlyAdmin):
    list_display = ["patient", "organization", "amount_due_cents", "currency", "as_of"]
    list_filter = ["organization"]
    search_fields = ["patient__last_name", "patient__first_name", "patient__external_ehr_id"]
    list_select_related = ["organization", "patient"]
