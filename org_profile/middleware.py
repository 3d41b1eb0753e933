import zoneinfo
from contextlib import nullcontext

from django.urls import reverse
from django.utils import timezone

from lumapay.tenant_rls import all_organizations, no_organization, organization_scope

from .selectors import membership_current, memberships_of

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


class _deactivating:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        timezone.deactivate()
        return False
