"""Django admin for platform operators. Ledger, audit and gateway rows, and the transaction and
refund rows whose totals are derived from the ledger, are read-only: money changes only through
the services, which write the ledger and the audit trail together."""

from django.contrib import admin, messages

from lumapay.admin import PhiAccessAdminMixin, ReadOnlyAdmin
from lumapay.errors import ApplicationError

from .models import (
    Dispute,
    GatewayEvent,
    PaymentRequest,
    PaymentRequestDelivery,
    Refund,
    SavedCard,
    Transaction,
    TransactionEvent,
)


class DeliveryInline(admin.TabularInline):
    model = PaymentRequestDelivery
    extra = 0
    can_delete = False
    fields = ["channel", "destination", "status", "error_message", "created_at", "sent_at"]
    readonly_fields = fields

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(PaymentRequest)
class PaymentRequestAdmin(PhiAccessAdminMixin, ReadOnlyAdmin):
    # Read-only too: sending, cancelling and expiring go through services that write the audit
    # trail, and a request is never deleted.
    list_display = ["id", "organization", "patient", "kind", "billing_item", "amount_cents", "status", "created_at"]
    list_filter = ["organization", "status", "kind"]
    search_fields = ["=id", "public_id", "billing_item", "patient__last_name", "patient__first_name"]
    list_select_related = ["organization", "patient"]
    date_hierarchy = "created_at"
    inlines = [DeliveryInline]


@admin.register(PaymentRequestDelivery)
class PaymentRequestDeliveryAdmin(PhiAccessAdminMixin, ReadOnlyAdmin):
    phi_patient_field = "payment_request__patient"
    list_display = ["id", "organization", "payment_request_id", "channel", "status", "error_message", "created_at"]
    list_filter = ["organization", "channel", "status"]
    search_fields = ["=payment_request__id", "provider_message_id", "error_message"]
    list_select_related = ["organization"]


class TransactionEventInline(admin.TabularInline):
    model = TransactionEvent
    extra = 0
    can_delete = False
    fields = ["created_at", "kind", "amount_cents", "actor_type", "actor_user", "gateway_reference", "message", "idempotency_key"]
    readonly_fields = fields

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


class RefundInline(admin.TabularInline):
    model = Refund
    extra = 0
    can_delete = False
    fields = ["created_at", "status", "amount_cents", "reason", "requested_by", "gateway_refund_id", "failure_message"]
    readonly_fields = fields

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(Transaction)
class TransactionAdmin(PhiAccessAdminMixin, ReadOnlyAdmin):
    list_display = [
        "id", "created_at", "organization", "patient", "location", "amount_cents",
        "charged_cents", "refunded_cents", "status", "vendor",
    ]
    list_filter = ["organization", "status", "vendor", "kind"]
    search_fields = ["=id", "gateway_checkout_id", "gateway_charge_id", "patient__last_name", "patient__first_name"]
    list_select_related = ["organization", "patient", "location"]
    date_hierarchy = "created_at"
    show_full_result_count = False
    inlines = [RefundInline, TransactionEventInline]


@admin.register(Refund)
class RefundAdmin(PhiAccessAdminMixin, ReadOnlyAdmin):
    phi_patient_field = "transaction__patient"
    list_display = ["id", "created_at", "organization", "transaction_id", "amount_cents", "status", "requested_by"]
    list_filter = ["organization", "status"]
    search_fields = ["=id", "=transaction__id", "gateway_refund_id", "idempotency_key", "reason"]
    list_select_related = ["organization", "requested_by"]


@admin.register(Dispute)
class DisputeAdmin(PhiAccessAdminMixin, ReadOnlyAdmin):
    phi_patient_field = "transaction__patient"
    list_display = ["id", "created_at", "organization", "transaction_id", "amount_cents", "status", "evidence_due_by"]
    list_filter = ["organization", "status"]
    search_fields = ["=transaction__id", "gateway_dispute_id"]
    list_select_related = ["organization"]


@admin.register(SavedCard)
class SavedCardAdmin(PhiAccessAdminMixin, ReadOnlyAdmin):
    """Consent records: who agreed, when, from where; the card itself stays at the gateway."""

    list_display = ["id", "created_at", "organization", "patient_id", "vendor", "card_brand", "card_last4", "status"]
    list_filter = ["organization", "vendor", "status"]
    search_fields = ["=patient__id", "gateway_customer_id", "gateway_payment_method_id"]
    list_select_related = ["organization"]


@admin.register(TransactionEvent)
class TransactionEventAdmin(ReadOnlyAdmin):
    list_display = ["id", "created_at", "organization", "transaction_id", "kind", "amount_cents", "actor_type"]
    list_filter = ["organization", "kind", "actor_type"]
    search_fields = ["=transaction__id", "idempotency_key", "gateway_reference", "gateway_event_id"]
    list_select_related = ["organization"]
    show_full_result_count = False


@admin.register(GatewayEvent)
class GatewayEventAdmin(ReadOnlyAdmin):
    list_display = ["id", "received_at", "organization", "gateway", "event_type", "event_id", "status", "attempts"]
    list_filter = ["organization", "gateway", "status", "event_type"]
    search_fields = ["event_id", "event_type", "error_message"]
    list_select_related = ["organization"]
    show_full_result_count = False
    actions = ["replay_selected"]

    def has_replay_permission(self, request):
        return request.user.has_perm("transactions.change_gatewayevent")

    @admin.action(description="Replay selected events", permissions=["replay"])
    def replay_selected(self, request, queryset):
        from .services.gateway_events import gateway_event_replay

        replayed = 0
        for event_id in queryset.order_by("received_at", "id").values_list("id", flat=True):
            try:
                gateway_event_replay(gateway_event_id=event_id, actor=request.user)
            except ApplicationError as error:
                self.message_user(request, f"Event {event_id}: {error.message}", messages.ERROR)
            else:
                replayed += 1
        if replayed:
            self.message_user(request, f"Replayed {replayed} event{'s' if replayed != 1 else ''}.", messages.SUCCESS)
