"""The project's URLs plus two pages that forget their organization filter on purpose.

They stand for a bug we have not written yet: a staff page and a public page that read
``Transaction.objects.all()`` and ``Patient.objects.all()``. Row-level security must keep them to
the request's own clinic, or to none.
"""

from django.http import JsonResponse
from django.urls import path

from ehr_sync.models import Patient
from lumapay.urls import urlpatterns as project_urlpatterns
from org_profile.access import membership_required
from transactions.models import Transaction


def _everything():
    # Deliberately unfiltered: no organization anywhere in these queries.
    return JsonResponse(
        {
            "transactions": sorted(Transaction.objects.all().values_list("pk", flat=True)),
            "patients": sorted(Patient.objects.all().values_list("pk", flat=True)),
        }
    )


@membership_required()
def forgetful_staff_page(request):
    return _everything()


def forgetful_public_page(request):
    return _everything()


urlpatterns = [
    *project_urlpatterns,
    path("__forgetful__/staff/", forgetful_staff_page, name="forgetful_staff_page"),
    path("__forgetful__/public/", forgetful_public_page, name="forgetful_public_page"),
]
