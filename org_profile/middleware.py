import zoneinfo

from django.utils import timezone
from django.utils.functional import SimpleLazyObject

from .selectors import membership_current

SESSION_KEY = "current_organization_id"


class CurrentOrganizationMiddleware:
    """Puts the signed-in user's current membership (and its organization) on the request.

    The current organization is the one chosen with "switch organization", kept in the session;
    otherwise the user's first active membership. Pages that need one use ``membership_required``.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        request.membership = SimpleLazyObject(lambda: membership_current(request=request))
        request.organization = SimpleLazyObject(
            lambda: request.membership.organization if request.membership else None
        )
        if not request.user.is_authenticated or not request.organization:
            return self.get_response(request)
        try:
            timezone.activate(zoneinfo.ZoneInfo(request.organization.timezone))
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            timezone.deactivate()
        try:
            return self.get_response(request)
        finally:
            timezone.deactivate()
