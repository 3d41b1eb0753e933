from django.conf import settings

from .access import MANAGERS
from .enums import Role
from .selectors import memberships_of
from .sessions import idle_timeout_seconds


def current_organization(request):
    membership = getattr(request, "membership", None)
    if not membership:
        return {"current_membership": None, "current_organization": None}
    return {
        "current_membership": membership,
        "current_organization": membership.organization,
        "user_memberships": getattr(request, "memberships", None) or memberships_of(user=request.user),
        "is_manager": membership.role in MANAGERS,
        # static/js/session.js warns this long before the idle timeout signs the member out.
        "session_idle_seconds": idle_timeout_seconds(request),
        "session_warning_seconds": settings.SESSION_IDLE_WARNING_SECONDS,
        # Administrators see a banner on every staff page while the clinic's Stripe account is
        # disconnected (account.application.deauthorized), until they connect it again.
        "stripe_disconnected_notice": membership.role == Role.ADMINISTRATOR
        and membership.organization.stripe_disconnected_at is not None,
    }
