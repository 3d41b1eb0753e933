"""Who may do what: ``staff_access`` for every service that acts for a staff user, the
``membership_required`` decorator for every view that shows clinic data, and
``reauthentication_required`` for the few actions that ask for the password again."""

from __future__ import annotations

import datetime
from collections.abc import Callable, Collection, Mapping
from functools import wraps
from urllib.parse import urlencode

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.http import Http404, QueryDict
from django.shortcuts import redirect, render
from django.urls import reverse
from django_htmx.http import HttpResponseClientRedirect

from lumapay.errors import ApplicationError

from .enums import Role
from .models import Location, Membership, Organization
from .sessions import same_site_referer, seconds_since_authenticated

MANAGERS = (Role.ADMINISTRATOR, Role.MANAGER)
ADMINISTRATORS = (Role.ADMINISTRATOR,)
EVERYONE = (Role.ADMINISTRATOR, Role.MANAGER, Role.STAFF)


class AccessDenied(ApplicationError):
    """The actor may not do this. ``reason`` says why: one of the ``NOT_A_MEMBER``, ``ROLE`` and
    ``LOCATION`` below (a refused location also names the form field, ``extra["field"]``)."""

    NOT_A_MEMBER = "not_a_member"
    ROLE = "role"
    LOCATION = "location"

    def __init__(self, message: str, *, reason: str) -> None:
        super().__init__(message, extra={"field": "location"} if reason == self.LOCATION else {})
        self.reason = reason


_DENIED = {
    AccessDenied.NOT_A_MEMBER: "You are not a member of this organization.",
    AccessDenied.ROLE: "Your role does not allow this.",
    AccessDenied.LOCATION: "{location} is not one of your locations.",
}


def staff_access(
    *,
    organization: Organization,
    actor,
    roles: Collection[str] = EVERYONE,
    location: Location | None = None,
    denied: Mapping[str, str] | None = None,
) -> Membership:
    """The one answer to "may this staff user act here": an active member of ``organization``,
    with one of ``roles`` and, when ``location`` is given, working at it (administrators and
    managers work at every location of their organization; a sub-account user at theirs).

    Returns the membership (its locations prefetched). Raises ``AccessDenied`` otherwise, with the
    message ``denied[reason]`` when the service words it its own way (``{location}`` is replaced
    by the location's name). Every service that acts for a staff user calls this, and no other
    role or location check.
    """
    messages = {**_DENIED, **(denied or {})}

    def refuse(reason: str) -> AccessDenied:
        name = location.name if location is not None else ""
        return AccessDenied(messages[reason].replace("{location}", name), reason=reason)

    membership = (
        Membership.objects.filter(user_id=getattr(actor, "pk", None), organization=organization, is_active=True)
        .select_related("organization")
        .prefetch_related("locations")
        .first()
        if actor is not None
        else None
    )
    if membership is None:
        raise refuse(AccessDenied.NOT_A_MEMBER)
    if membership.role not in roles:
        raise refuse(AccessDenied.ROLE)
    if location is not None:
        if location.organization_id != organization.pk:
            raise refuse(AccessDenied.LOCATION)
        if not membership.sees_all_locations and location.pk not in {own.pk for own in membership.locations.all()}:
            raise refuse(AccessDenied.LOCATION)
    return membership


# Role names as a sentence says them, in the order roles are listed everywhere.
_ROLE_PLURALS = {Role.ADMINISTRATOR: "administrators", Role.MANAGER: "managers", Role.STAFF: "sub-account users"}


def roles_in_words(roles: Collection[str]) -> str:
    """Roles as a refusal names them: "administrators and managers" (or "nobody")."""
    names = [plural for role, plural in _ROLE_PLURALS.items() if role in roles]
    if len(names) <= 1:
        return "".join(names) or "nobody"
    return f"{', '.join(names[:-1])} and {names[-1]}"


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


def found_or_404(found, message: str = "Not found."):
    """What a selector found, or 404 for its ``None``: another organization's or location's id is
    "not found", never a 403 that would confirm it exists."""
    if found is None:
        raise Http404(message)
    return found


# The form a member was sending when asked for their password again, kept to show it again.
_PENDING_FORM = "reauthentication_pending_form"


def reauthentication_required(
    max_age: datetime.timedelta | int | None = None,
    *,
    when: Callable | None = None,
    return_to: Callable | None = None,
    keep_form: bool = False,
):
    """Ask for the password again when the member last typed it (signing in, or on the
    confirm-password page) longer ago than ``max_age`` (a timedelta or seconds; default
    ``REAUTHENTICATION_MAX_AGE_MINUTES``), then come back.

    A GET goes to the confirm-password page and returns to the same address. A POST is never
    replayed: nothing is done, and after the password the member is back on the form
    (``return_to(request)``, else the page the form was sent from) to send it again; with
    ``keep_form`` the form shows what they had typed (``reauthentication_pending_form``).
    ``when(request)``, if given, says whether this request needs it at all (a settings page asks
    only when roles change). Place it under ``membership_required``. The MFA settings use it too.
    """

    def seconds_allowed() -> float:
        if max_age is None:
            return settings.REAUTHENTICATION_MAX_AGE_MINUTES * 60
        if isinstance(max_age, datetime.timedelta):
            return max_age.total_seconds()
        return max_age

    def decorator(view):
        @wraps(view)
        def wrapper(request, *args, **kwargs):
            if not request.user.is_authenticated:
                return redirect_to_login(request.get_full_path())
            limit = seconds_allowed()
            if seconds_since_authenticated(request) <= limit or (when is not None and not when(request)):
                return view(request, *args, **kwargs)
            if request.method in ("GET", "HEAD"):
                next_url = request.get_full_path()
            else:
                next_url = return_to(request) if return_to else same_site_referer(request)
                if keep_form:
                    data = {key: request.POST.getlist(key) for key in request.POST if key != "csrfmiddlewaretoken"}
                    request.session[_PENDING_FORM] = {"path": next_url.split("?")[0], "data": data}
                messages.info(
                    request,
                    "Nothing was changed yet: confirm your password, then save again."
                    if keep_form
                    else "Nothing was done yet: confirm your password, then try again.",
                )
            url = f"{reverse('password_confirm')}?{urlencode({'next': next_url})}"
            if getattr(request, "htmx", False):
                return HttpResponseClientRedirect(url)
            return redirect(url)

        return wrapper

    return decorator


def reauthentication_pending_form(request) -> QueryDict | None:
    """The form data a member had sent to this page when they were asked for their password
    (``reauthentication_required(keep_form=True)``), once; None when there is none."""
    pending = request.session.get(_PENDING_FORM)
    if not pending or pending.get("path") != request.path:
        return None
    del request.session[_PENDING_FORM]
    data = QueryDict(mutable=True)
    for key, values in pending["data"].items():
        data.setlist(key, values)
    return data
