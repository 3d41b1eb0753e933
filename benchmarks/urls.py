"""LumaPay's URLs and, beside them, the bare one-row Django view of the throughput benchmark:
one transaction read by primary key through the ORM and returned as JSON, behind the same
middleware as every page (security, static files, sessions, CSRF, authentication, messages,
htmx, the current organization), for a visitor who is not signed in. What any Django page costs
before it does its own work, and the floor the dashboard's share is measured against."""

from django.http import JsonResponse
from django.urls import path

from lumapay import urls as lumapay_urls

from transactions.models import Transaction

BARE_VIEW_PATH = "/__bench__/one-row-view"


def one_row(request):
    row = Transaction.objects.filter(pk=int(request.GET.get("id") or 0)).values(
        "id", "status", "amount_cents", "created_at"
    ).first()
    return JsonResponse({"transaction": row})


urlpatterns = [path(BARE_VIEW_PATH.lstrip("/"), one_row), *lumapay_urls.urlpatterns]
