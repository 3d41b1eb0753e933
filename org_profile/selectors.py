from __future__ import annotations

from django.db.models import Exists, OuterRef, QuerySet
from django_otp import user_has_device
from django_otp.plugins.otp_static.models import StaticToken
from django_otp.plugins.otp_totp.models import TOTPDevice

from .enums import Role
from .models import Location, Membership, Organization


def memberships_of(*, user) -> QuerySet[Membership]:
    return (
        Membership.objects.filter(user=user, is_active=True)
        .select_related("organization")
        .order_by("organization__name")
    )


def membership_current(*, request, memberships: list[Membership] | None = None) -> Membership | None:
    """The membership chosen with "switch organization" (kept in the session), or the user's first
    active one. ``memberships``: the user's active memberships (``memberships_of``), when the
    caller has them already."""
    from .middleware import SESSION_KEY

    user = request.user
    if not user.is_authenticated:
        return None
    if memberships is None:
        memberships = list(memberships_of(user=user))
    chosen = request.session.get(SESSION_KEY)
    if chosen is not None:
        for membership in memberships:
            if membership.organization_id == chosen:
                return membership
    return memberships[0] if memberships else None


def location_ids_visible(*, membership: Membership) -> list[int] | None:
    """The locations a member may see, or None when the role sees every location."""
    if membership.role != Role.STAFF:
        return None
    return list(membership.locations.values_list("id", flat=True))


def locations_for(*, membership: Membership) -> QuerySet[Location]:
    locations = Location.objects.filter(organization=membership.organization, is_active=True)
    visible = location_ids_visible(membership=membership)
    if visible is not None:
        locations = locations.filter(id__in=visible)
    return locations.order_by("name")


def scope_to_locations(queryset: QuerySet, *, membership: Membership, field: str = "location") -> QuerySet:
    """Limit a tenant queryset to the member's locations (sub-account users only)."""
    visible = location_ids_visible(membership=membership)
    if visible is None:
        return queryset
    return queryset.filter(**{f"{field}_id__in": visible})


def organization_get(*, slug: str) -> Organization | None:
    return Organization.objects.filter(slug=slug).first()


def members_of_organization(*, organization: Organization) -> list[Membership]:
    """The organization's members (active first, then by e-mail), each with ``is_locked`` (is
    their sign-in locked after too many wrong passwords) and ``has_authenticator`` (have they set
    up two-step sign-in)."""
    from .lockout import locked_emails

    authenticator = TOTPDevice.objects.filter(user=OuterRef("user"), confirmed=True)
    memberships = list(
        Membership.objects.filter(organization=organization)
        .select_related("user")
        .annotate(has_authenticator=Exists(authenticator))
        .order_by("-is_active", "user__email")
    )
    locked = locked_emails(m.user.email for m in memberships)
    for membership in memberships:
        membership.is_locked = membership.user.email.lower() in locked
    return memberships


def member_of_organization(*, organization: Organization, pk: int) -> Membership | None:
    """One membership of the organization by id; another organization's is None."""
    return Membership.objects.filter(organization=organization, pk=pk).select_related("user").first()


# -- two-step sign-in (django-otp) -------------------------------------------------------------------


def mfa_required(*, user, memberships: list[Membership]) -> bool:
    """Must ``user`` sign in in two steps: operators (``is_staff``, for ``/admin/``), administrators
    and managers of any organization, and everyone in an organization that asks it of everyone.
    ``memberships``: the user's active memberships (``memberships_of``), organizations loaded."""
    if user.is_staff:
        return True
    return any(
        membership.role in (Role.ADMINISTRATOR, Role.MANAGER) or membership.organization.mfa_required_for_everyone
        for membership in memberships
    )


def mfa_has_device(*, user) -> bool:
    """Has ``user`` anything that answers the second step: an authenticator app or backup codes."""
    return user_has_device(user, confirmed=True)


def mfa_authenticator_of(*, user) -> TOTPDevice | None:
    return TOTPDevice.objects.devices_for_user(user, confirmed=True).order_by("-id").first()


def mfa_backup_codes_left(*, user) -> int:
    return StaticToken.objects.filter(device__user=user, device__confirmed=True).count()
