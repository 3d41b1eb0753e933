"""Payouts in the operators' admin: the gateway's word, stored, so operators look and never edit.
An operator can have a payout's lines fetched again (after fixing what made a fetch fail)."""

from django.contrib import admin, messages

from lumapay.admin import ReadOnlyAdmin
from lumapay.task_queue import task_enqueue_on_commit

from .models import GatewayBalance, Payout, PayoutLine


@admin.register(Payout)
class PayoutAdmin(ReadOnlyAdmin):
    list_display = [
        "id", "created_at", "organization", "gateway", "gateway_payout_id", "amount_cents", "currency",
        "status", "method", "arrival_date", "reconciliation", "lines_count",
    ]  # fmt: skip
    list_filter = ["organization", "gateway", "status", "method", "reconciliation"]
    search_fields = ["gateway_payout_id", "trace_id"]
    list_select_related = ["organization"]
    date_hierarchy = "created_at"
    show_full_result_count = False
    actions = ["reconcile_again"]

    def has_reconcile_permission(self, request):
        return request.user.has_perm("payouts.change_payout")

    @admin.action(description="Fetch the lines of the selected payouts again", permissions=["reconcile"])
    def reconcile_again(self, request, queryset):
        payout_ids = list(queryset.values_list("id", flat=True))
        for payout_id in payout_ids:
            task_enqueue_on_commit("payouts.tasks.payout_reconcile", payout_id)
        self.message_user(
            request, f"Queued {len(payout_ids)} payout{'s' if len(payout_ids) != 1 else ''} to be reconciled again.", messages.SUCCESS
        )


@admin.register(PayoutLine)
class PayoutLineAdmin(ReadOnlyAdmin):
    list_display = ["id", "created_at", "payout", "kind", "amount_cents", "fee_cents", "net_cents", "transaction_id"]
    list_filter = ["kind"]
    search_fields = ["gateway_line_id", "source_id", "charge_id", "payout__gateway_payout_id"]
    list_select_related = ["payout"]
    raw_id_fields = ["payout", "transaction"]
    show_full_result_count = False


@admin.register(GatewayBalance)
class GatewayBalanceAdmin(ReadOnlyAdmin):
    list_display = ["organization", "currency", "available_cents", "pending_cents", "next_payout_date", "next_payout_estimate_cents", "updated_at"]
    list_select_related = ["organization"]
