import zoneinfo
from contextlib import nullcontext
from urllib.parse import urlencode

from django.shortcuts import redirect
from django.urls import reverse
from django.utils import timezone
from django.utils.functional import SimpleLazyObject
from django_htmx.http import HttpResponseClientRedirect

from lumapay.tenant_rls import all_organizations, no_organization, organization_scope

from .selectors import membership_current, memberships_of, mfa_has_device, mfa_required

SESSION_KEY = "current_organization_id"


class CurrentOrganizationMiddleware:
    """Puts the signed-in user's current membership (and its organization) on the request, and
    runs the rest of the request in that organization's database scope (lumapay/tenant_rls.py):
    PostgreSQL shows the request only that organization's rows, whatever a query forgets.

    The current organization is the one chosen with "switch organization", kept in the session;
    otherwise the user's first active membership. Pages that need one use ``membership_required``.
    A request with no organization (anonymous, or a user without one) sees no clinic's rows;
    operators (``is_staff``) on the admin site see every clinic's, as the owner role.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        request.memberships, request.membership, request.organization = [], None, None
        if request.user.is_authenticated:
            # Which organization the request acts for: the user's memberships in every one of
            # them (one query; the header's organization switcher lists them).
            with all_organizations():
                request.memberships = list(memberships_of(user=request.user))
            request.membership = membership_current(request=request, memberships=request.memberships)
            request.organization = request.membership.organization if request.membership else None
        with self._database_scope(request), self._time_zone(request):
            return self.get_response(request)

    @staticmethod
    def _database_scope(request):
        user = request.user
        if user.is_authenticated and user.is_active and user.is_staff and request.path_info.startswith(reverse("admin:index")):
            return all_organizations()  # the operators' admin, reviewed: it spans clinics
        if request.organization is not None:
            return organization_scope(request.organization.pk)
        return no_organization()

    @staticmethod
    def _time_zone(request):
        if request.organization is None:
            return nullcontext()
        try:
            timezone.activate(zoneinfo.ZoneInfo(request.organization.timezone))
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            timezone.deactivate()
        return _deactivating()


class TwoStepSignInMiddleware:
    """Holds a signed-in user at the second step of signing in until this session passed it.

    A user who has an authenticator app (or backup codes) and has not entered a code in this
    session is sent to the code page; a user who must sign in in two steps (``mfa_required``) and
    has set up nothing is sent to set up an authenticator app. Every other page waits, whichever app
    it belongs to (a page added later is held too): only signing in and out, password reset, the two
    pages of the second step, and the pages that are not staff pages (the patient's pay pages, the
    Sandbox's checkout, webhooks, the dev outbox) are let through. ``/admin/`` also checks it itself
    (lumapay/admin_site.py). After ``CurrentOrganizationMiddleware``, whose memberships it reads.
    """

    ALLOWED_VIEWS = {
        "login",
        "logout",
        "password_reset",
        "password_reset_done",
        "password_reset_confirm",
        "password_reset_complete",
        "mfa_verify",
        "mfa_enrol",
        "dev_outbox",
    }
    ALLOWED_NAMESPACES = {"pay", "sandbox", "webhooks"}

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    def process_view(self, request, view_func, view_args, view_kwargs):
        user = request.user
        if not user.is_authenticated or user.is_verified():
            return None
        match = request.resolver_match
        if match is not None and (match.view_name in self.ALLOWED_VIEWS or match.namespace in self.ALLOWED_NAMESPACES):
            return None
        if mfa_has_device(user=user):
            step = "mfa_verify"
        elif mfa_required(user=user, memberships=request.memberships):
            step = "mfa_enrol"
        else:
            return None
        target = reverse(step)
        if request.method in ("GET", "HEAD"):
            target = f"{target}?{urlencode({'next': request.get_full_path()})}"
        if getattr(request, "htmx", False):
            return HttpResponseClientRedirect(target)
        return redirect(target)


class _deactivating:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        timezone.deactivate()
        return False
