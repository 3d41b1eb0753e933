"""The dashboard: the organization's transactions, newest first."""

from django.core.paginator import Paginator
from django.shortcuts import render

from org_profile.access import membership_required

from ..selectors.ledger import transactions_for

PAGE_SIZE = 25


@membership_required()
def transaction_list(request):
    page = Paginator(transactions_for(membership=request.membership), PAGE_SIZE).get_page(request.GET.get("page"))
    return render(request, "transactions/dashboard/list.html", {"page": page, "nav": "dashboard"})
