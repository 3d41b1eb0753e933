"""The project's URLs plus one probe page behind ``membership_required``.

The probe answers with the organization and role the middleware put on the request, so the
tenancy tests go through the real middleware stack without depending on a particular staff page.
"""

from django.http import JsonResponse
from django.urls import path

from lumapay.urls import urlpatterns as project_urlpatterns
from org_profile.access import membership_required


@membership_required()
def current_organization_probe(request):
    return JsonResponse(
        {
            "organization_id": request.organization.id,
            "organization_name": request.organization.name,
            "role": request.membership.role,
        }
    )


urlpatterns = [
    *project_urlpatterns,
    path("__probe__/current-organization/", current_organization_probe, name="current_organization_probe"),
]
