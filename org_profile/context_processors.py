from .access import MANAGERS
from .selectors import memberships_of


def current_organization(request):
    membership = getattr(request, "membership", None)
    if not membership:
        return {"current_membership": None, "current_organization": None}
    return {
        "current_membership": membership,
        "current_organization": membership.organization,
        "user_memberships": getattr(request, "memberships", None) or memberships_of(user=request.user),
        "is_manager": membership.role in MANAGERS,
    }
