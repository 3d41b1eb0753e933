from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404
from django.shortcuts import redirect
from django.views.decorators.http import require_POST

from .middleware import SESSION_KEY
from .selectors import memberships_of


@login_required
@require_POST
def organization_switch(request):
    """Make another of the user's organizations the current one for this session."""
    try:
        organization_id = int(request.POST.get("organization", ""))
    except ValueError:
        raise Http404
    membership = memberships_of(user=request.user).filter(organization_id=organization_id).first()
    if membership is None:
        raise Http404
    request.session[SESSION_KEY] = membership.organization_id
    messages.success(request, f"You are now working in {membership.organization.name}.")
    # Ids in the old URL belong to the old organization: land on the dashboard instead.
    return redirect("transactions:dashboard")
