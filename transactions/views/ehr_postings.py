"""Postings to the EHR: "Post again" on a transaction's page, and the daily posting files of an
organization that posts through no connection (managers and administrators)."""

import datetime

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST

from lumapay.audit import client_ip
from lumapay.errors import ApplicationError
from lumapay.phi_access import phi_access_record
from org_profile.access import MANAGERS, found_or_404, membership_required

from ..models import EhrPosting, TransactionEvent
from ..selectors.ehr_postings import posting_connection_for
from ..selectors.ledger import organization_zone, transaction_get
from ..services.ehr_postings import POSTED_EVENT_KINDS, ehr_posting_file, ehr_posting_file_days, ehr_posting_retry

FILE_DAYS = 14


@require_POST
@membership_required()
def ehr_posting_retry_view(request, pk, posting_pk):
    # The role check comes before the lookup, so the answer says nothing about the ids.
    if request.membership.role not in MANAGERS:
        raise PermissionDenied("Only managers and administrators can post to the EHR again.")
    transaction = found_or_404(transaction_get(membership=request.membership, pk=pk))
    posting = get_object_or_404(EhrPosting.objects.filter(transaction=transaction), pk=posting_pk)
    try:
        ehr_posting_retry(organization=request.organization, actor=request.user, posting=posting, ip_address=client_ip(request))
    except ApplicationError as error:
        messages.error(request, error.message)
    else:
        messages.success(request, f"The {posting.get_kind_display().lower()} is being posted to the EHR again.")
    return redirect("transactions:transaction_detail", pk=transaction.pk)


@require_GET
@membership_required(roles=MANAGERS)
def ehr_posting_file_list(request):
    zone = organization_zone(request.organization)
    today = timezone.now().astimezone(zone).date()
    return render(
        request,
        "transactions/ehr_postings/files.html",
        {
            "days": ehr_posting_file_days(organization=request.organization, zone=zone, today=today, days=FILE_DAYS),
            "connection": posting_connection_for(request.organization.pk),
            "nav": "dashboard",
        },
    )


@require_GET
@membership_required(roles=MANAGERS)
def ehr_posting_file_download(request, day):
    try:
        day = datetime.date.fromisoformat(day)
    except ValueError:
        raise Http404("No such day.")
    zone = organization_zone(request.organization)
    posting_file = ehr_posting_file(
        organization=request.organization, actor=request.user, day=day, zone=zone, ip_address=client_ip(request)
    )
    start = datetime.datetime.combine(day, datetime.time.min, tzinfo=zone)
    phi_access_record(
        request=request,
        organization=request.organization,
        patients=TransactionEvent.objects.filter(
            organization=request.organization,
            kind__in=list(POSTED_EVENT_KINDS),
            created_at__gte=start,
            created_at__lt=start + datetime.timedelta(days=1),
        ).values_list("transaction__patient_id", flat=True),
    )
    response = HttpResponse(posting_file.content, content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{posting_file.filename}"'
    response["Cache-Control"] = "private, no-store"
    return response
