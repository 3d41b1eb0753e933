from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods, require_POST

from lumapay.errors import ApplicationError
from lumapay.tenant_rls import all_organizations

from .access import ADMINISTRATORS, membership_required
from .forms import OrganizationSettingsForm
from .middleware import SESSION_KEY
from .selectors import memberships_of
from .services import OrganizationSettingsInvalid, organization_update


@login_required
@require_POST
def organization_switch(request):
    """Make another of the user's organizations the current one for this session."""
    try:
        organization_id = int(request.POST.get("organization", ""))
    except ValueError:
        raise Http404
    # Which organization the session acts for next: the user's own memberships, in any of them.
    with all_organizations():
        membership = memberships_of(user=request.user).filter(organization_id=organization_id).first()
    if membership is None:
        raise Http404
    request.session[SESSION_KEY] = membership.organization_id
    messages.success(request, f"You are now working in {membership.organization.name}.")
    # Ids in the old URL belong to the old organization: land on the dashboard instead.
    return redirect("transactions:dashboard")


@membership_required(roles=ADMINISTRATORS)
@require_http_methods(["GET", "HEAD", "POST"])
def organization_settings(request):
    """The organization's legal and public-facing information and who may refund: administrators
    only (everyone else gets 403, as for any page their role may not use)."""
    organization = request.organization
    if request.method == "POST":
        form = OrganizationSettingsForm(request.POST)
        if form.is_valid():
            before = OrganizationSettingsForm.initial_for(organization)
            try:
                updated = organization_update(organization=organization, actor=request.user, data=form.data_for_service())
            except OrganizationSettingsInvalid as error:
                for field, field_errors in error.errors.items():
                    for message in field_errors:
                        form.add_error(field, message)
            except ApplicationError as error:
                form.add_error(None, error.message)
            else:
                changed = before != OrganizationSettingsForm.initial_for(updated)
                messages.success(request, "Saved the organization's settings." if changed else "Nothing changed.")
                return redirect("organization_settings")
        status = 400
    else:
        form = OrganizationSettingsForm(initial=OrganizationSettingsForm.initial_for(organization))
        status = 200
    return render(
        request,
        "org_profile/settings.html",
        {"form": form, "organization": organization, "nav": "organization_settings"},
        status=status,
    )
