"""Django admin for the EHR mirror. Patients can be corrected by operators (support edits) but
never deleted: payments, requests and the audit trail point at them. Appointments and balances are
what the EHR or an upload says; the next sync would overwrite an edit, so they are read-only."""

from django.contrib import admin, messages
from django.utils.html import format_html

from lumapay.admin import PhiAccessAdminMixin, ReadOnlyAdmin
from lumapay.errors import ApplicationError
from lumapay.phi_access import phi_access_record

from .connection_selectors import rejection_patient_ids
from .hl7_feed import hl7_message_patient_ids, hl7_message_replay
from .models import Appointment, Balance, EhrConnection, Hl7Message, ImportRejection, ImportRun, Patient
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


@admin.register(EhrConnection)
class EhrConnectionAdmin(ReadOnlyAdmin):
    """What a clinic's administrators set, for support to read; never the credentials (not even
    encrypted). Changes are made on the clinic's own page, where they are checked and audited."""

    list_display = ["name", "organization", "kind", "is_active", "sync_every_minutes", "last_success_at", "failing_since"]
    list_filter = ["organization", "kind", "is_active"]
    search_fields = ["name", "base_url"]
    list_select_related = ["organization"]
    exclude = ["credentials_encrypted"]

    def get_readonly_fields(self, request, obj=None):
        return [field.name for field in self.model._meta.fields if field.name != "credentials_encrypted"]


class ImportRejectionInline(admin.TabularInline):
    model = ImportRejection
    fields = ["kind", "reference", "field", "value", "reason"]
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(ImportRun)
class ImportRunAdmin(PhiAccessAdminMixin, ReadOnlyAdmin):
    """Runs and their counts; a run's page lists its rejected records, whose values can be patient
    data: opening it is recorded in the PHI access log (the list shows counts only)."""

    list_display = ["started_at", "organization", "source", "connection", "status", "received", "created", "updated", "rejected"]
    list_filter = ["organization", "source", "status"]
    list_select_related = ["organization", "connection"]
    date_hierarchy = "started_at"
    inlines = [ImportRejectionInline]

    def changelist_view(self, request, extra_context=None):
        # Counts and labels only: nothing to record (PhiAccessAdminMixin would record every run's patients).
        return admin.ModelAdmin.changelist_view(self, request, extra_context)

    def _phi_record(self, request, pks) -> None:
        for run in ImportRun.objects.filter(pk__in=list(pks)).select_related("organization"):
            rejections = list(ImportRejection.objects.filter(run=run))
            if rejections:
                phi_access_record(
                    request=request,
                    organization=run.organization,
                    patients=rejection_patient_ids(organization=run.organization, rejections=rejections),
                    is_operator=True,
                    shows_unlisted_records=True,
                )


@admin.register(Hl7Message)
class Hl7MessageAdmin(PhiAccessAdminMixin, ReadOnlyAdmin):
    """Every HL7 v2 message as it arrived, kept before it was acknowledged. The list shows no
    patient data (type, control id, facility, outcome); the message itself (PHI) is shown only on
    its own page. The operators' admin is for LumaPay's operators only (lumapay/admin_site.py), and
    each page records the patients its messages are about in the PHI access log."""

    list_display = ["received_at", "organization", "sending_facility", "message_type", "control_id", "status", "ack_code"]
    list_filter = ["status", "ack_code", "message_type", "organization"]
    search_fields = ["=control_id", "sending_facility"]
    list_select_related = ["organization"]
    date_hierarchy = "received_at"
    show_full_result_count = False
    actions = ["replay_selected"]
    fields = [
        "received_at", "organization", "connection", "sending_facility", "message_type", "control_id",
        "status", "ack_code", "error", "import_run", "processed_at", "message_text",
    ]

    def get_readonly_fields(self, request, obj=None):
        return self.fields

    @admin.display(description="Message as received")
    def message_text(self, obj):
        # Segments on lines of their own; escaped, never rendered as HTML.
        return format_html('<pre class="hl7-message">{}</pre>', obj.raw.replace("\r", "\n"))

    def _phi_record(self, request, pks) -> None:
        # A message has no patient column: its patients are the ones its PID names, in its clinic.
        pairs = [
            (message.organization_id, patient_id)
            for message in Hl7Message.objects.filter(pk__in=list(pks), organization__isnull=False)
            for patient_id in hl7_message_patient_ids(message)
        ]
        phi_access_record(request=request, patients=pairs, is_operator=True)

    def has_replay_permission(self, request):
        return request.user.has_perm("ehr_sync.change_hl7message")

    @admin.action(description="Replay selected messages (import them again)", permissions=["replay"])
    def replay_selected(self, request, queryset):
        imported = 0
        for message_id in queryset.order_by("received_at", "id").values_list("id", flat=True):
            try:
                ack = hl7_message_replay(message_id=message_id, actor=request.user)
            except ApplicationError as error:
                self.message_user(request, f"Message {message_id}: {error.message}", messages.ERROR)
                continue
            if ack.code == "AA":
                imported += 1
            else:
                self.message_user(request, f"Message {message_id} ({ack.code}): {ack.text}", messages.WARNING)
        if imported:
            self.message_user(request, f"Imported {imported} message{'s' if imported != 1 else ''}.", messages.SUCCESS)
