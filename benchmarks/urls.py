"""LumaPay's URLs and, beside them, the bare one-row Django view of the throughput benchmark:
one transaction read by primary key through the ORM and returned as JSON, behind the same
middleware as every page (security, static files, sessions, CSRF, authentication, messages,
htmx, the current organization), for a visitor who is not signed in. What any Django page costs
before it does its own work, and the floor the dashboard's share is measured against."""

from django.http import JsonResponse
from django.urls import path

from lumapay import urls as lumapay_urls
from lumapay.tenant_rls import organization_scope

from transactions.models import Transaction

BARE_VIEW_PATH = "/__bench__/one-row-view"


def one_row(request):
    # In the row's organization (``org``), as the app's role: what a signed-in page's middleware does
    # (lumapay/tenant_rls.py); with no organization, row-level security would show no row.
    with organization_scope(int(request.GET.get("org") or 0)):
        row = Transaction.objects.filter(pk=int(request.GET.get("id") or 0)).values(
            "id", "status", "amount_cents", "created_at"
        ).first()
    return JsonResponse({"transaction": row})


urlpatterns = [path(BARE_VIEW_PATH.lstrip("/"), one_row), *lumapay_urls.urlpatterns]
