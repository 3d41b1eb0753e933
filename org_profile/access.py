"""Role checks for staff pages: one decorator, used by every view that shows clinic data."""

from functools import wraps

from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.shortcuts import render

from .enums import Role

MANAGERS = (Role.ADMINISTRATOR, Role.MANAGER)
ADMINISTRATORS = (Role.ADMINISTRATOR,)
EVERYONE = (Role.ADMINISTRATOR, Role.MANAGER, Role.STAFF)


def membership_required(roles=EVERYONE):
    """Signed in, with an active membership in the current organization and one of ``roles``.

    Anonymous users go to the login page; a user with no organization sees a page that says so;
    a role that may not use the page gets 403 (the page exists for everyone in the organization).
    """

    def decorator(view):
        @wraps(view)
        def wrapper(request, *args, **kwargs):
            if not request.user.is_authenticated:
                return redirect_to_login(request.get_full_path())
            if not request.membership:
                return render(request, "org_profile/no_organization.html", status=403)
            if request.membership.role not in roles:
                raise PermissionDenied("Your role does not allow this.")
            return view(request, *args, **kwargs)

        return wrapper

    return decorator
