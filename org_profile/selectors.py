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
        # Read on every staff page: the logo's bytes only where it is shown (loaded then).
        .defer("organization__logo_png")
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


def organization_people(*, organization: Organization) -> list:
    """The owners and controller of the organization's profile (secrets stay encrypted)."""
    from .models import OrganizationPerson

    return list(OrganizationPerson.objects.filter(organization=organization).order_by("last_name", "first_name", "pk"))


# What Stripe's requirement names mean, for the administrator; others are shown as Stripe names them.
STRIPE_REQUIREMENT_LABELS = {
    "business_profile.mcc": "The clinic's business category (industry code)",
    "business_profile.product_description": "A description of what the clinic sells",
    "business_profile.support_phone": "A support phone number",
    "business_profile.url": "The clinic's website",
    "business_type": "The kind of business",
    "external_account": "A bank account for payouts",
    "tos_acceptance.date": "Acceptance of Stripe's terms of service",
    "tos_acceptance.ip": "Acceptance of Stripe's terms of service",
    "company.tax_id": "The clinic's tax ID (EIN)",
    "company.name": "The clinic's legal name",
    "company.address.line1": "The clinic's address",
    "company.address.city": "The clinic's address",
    "company.address.postal_code": "The clinic's address",
    "company.address.state": "The clinic's address",
    "company.owners_provided": "Confirmation that every owner of 25% or more is listed",
    "representative.first_name": "A representative's name",
    "representative.last_name": "A representative's name",
    "representative.dob.day": "A representative's date of birth",
    "representative.dob.month": "A representative's date of birth",
    "representative.dob.year": "A representative's date of birth",
    "representative.ssn_last_4": "The last 4 digits of a representative's SSN",
    "representative.email": "A representative's e-mail address",
    "representative.phone": "A representative's phone number",
    "representative.address.line1": "A representative's home address",
    "representative.relationship.title": "A representative's title",
}


def stripe_requirement_labels(names) -> list[str]:
    """Stripe's requirement names as the administrator reads them, each label once."""
    labels: list[str] = []
    for name in names or []:
        if name.startswith("person_"):
            # person_1Abc.dob.day: what Stripe needs about one of the owners
            _person, _, rest = name.partition(".")
            label = STRIPE_REQUIREMENT_LABELS.get(f"representative.{rest}", f"An owner's {rest.replace('_', ' ')}")
            label = label.replace("A representative's", "An owner's")
        else:
            label = STRIPE_REQUIREMENT_LABELS.get(name, name)
        if label not in labels:
            labels.append(label)
    return labels


def stripe_requirements_view(*, organization: Organization) -> dict:
    """What the profile page says about the clinic's Stripe account: whether it is connected or
    was disconnected, and what Stripe still needs, past due first, with the deadline."""
    requirements = organization.stripe_requirements or {}
    return {
        "has_account": bool(organization.stripe_account_id),
        "connected": organization.stripe_connected,
        "disconnected_at": organization.stripe_disconnected_at,
        "past_due": stripe_requirement_labels(requirements.get("past_due")),
        "currently_due": stripe_requirement_labels(
            [name for name in requirements.get("currently_due") or [] if name not in (requirements.get("past_due") or [])]
        ),
        "eventually_due": stripe_requirement_labels(
            [name for name in requirements.get("eventually_due") or [] if name not in (requirements.get("currently_due") or [])]
        ),
        "deadline": organization.stripe_current_deadline,
        "disabled_reason": organization.stripe_disabled_reason,
        "as_of": organization.stripe_account_updated_at,
    }
