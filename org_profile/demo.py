"""The demo clinic's tenancy for `make dev`: the organization, two locations, one user per role.

Called by ``manage.py seed_demo_clinic`` (lumapay/management/commands/), which builds the rest of
the demo with the builders ehr_sync and transactions own. Idempotent: everything hangs off the
organization slug ``demo-clinic`` and what exists is kept.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from decimal import Decimal

from django_otp.oath import TOTP
from django_otp.plugins.otp_static.models import StaticDevice, StaticToken
from django_otp.plugins.otp_totp.models import TOTPDevice

from .enums import BusinessType, IndustryCode, PaymentGateway, Role
from .models import Location, Membership, Organization, OrganizationPerson, User
from .profile_secrets import secret_encrypt
from .services import AUTHENTICATOR_NAME, BACKUP_CODES_NAME, backup_code_hash

SLUG = "demo-clinic"
PASSWORD = "demo-clinic-2026"
EMAIL_DOMAIN = "demo.lumapay.test"

USERS = [
    (f"admin@{EMAIL_DOMAIN}", "Avery", "Brooks", Role.ADMINISTRATOR),
    (f"manager@{EMAIL_DOMAIN}", "Morgan", "Reyes", Role.MANAGER),
    (f"staff@{EMAIL_DOMAIN}", "Sam", "Okafor", Role.STAFF),
]
# Administrators and managers sign in in two steps, in the demo too. Their authenticator is set up
# with this public key (add it to an authenticator app, or read the current code in the banner or
# from `manage.py demo_sign_in_code`), and each has these backup codes, each usable once.
DEMO_TOTP_SECRET = "LUMA PAYD EMOC LINI CTOT PSEC RETK EY23"
DEMO_BACKUP_CODES = [f"demo-code-{n:04d}" for n in range(1, 11)]
LOCATIONS = [
    ("Downtown", "410 Grace Street, Richmond, VA 23219", "+18045550110"),
    ("Northside", "3200 Brook Road, Richmond, VA 23227", "+18045550120"),
]


@dataclass(frozen=True)
class DemoTenancy:
    organization: Organization
    created: bool  # False when the demo clinic was already there
    locations: list[Location]
    users: dict[str, User]  # by role


def demo_tenancy_build() -> DemoTenancy:
    """The demo organization, its locations and its users, created where missing."""
    organization, created = Organization.objects.get_or_create(
        slug=SLUG,
        defaults=dict(
            name="Demo Family Clinic",
            legal_name="Demo Family Clinic PLLC",
            public_name="Demo Family Clinic",
            payment_gateway=PaymentGateway.SANDBOX,
            address_line1="410 Grace Street",
            address_line2="Suite 200",
            city="Richmond",
            state="VA",
            postal_code="23219",
            support_phone="+1 (804) 555-0100",
            support_email=f"billing@{EMAIL_DOMAIN}",
            website="https://demo.lumapay.test",
            statement_descriptor="DEMO FAMILY CLINIC",
            tax_id_last4="4821",
            # A platform fee, so the demo's payments show one (org_profile.fees).
            platform_fee_percent=Decimal("1.00"),
            platform_fee_fixed_cents=25,
        ),
    )
    _demo_profile_complete(organization)
    locations = [
        Location.objects.get_or_create(
            organization=organization, name=name, defaults={"address": address, "phone": phone}
        )[0]
        for name, address, phone in LOCATIONS
    ]
    users = {}
    for email, first_name, last_name, role in USERS:
        user = User.objects.filter(email__iexact=email).first()
        if user is None:
            user = User.objects.create_user(email=email, password=PASSWORD, first_name=first_name, last_name=last_name)
        membership, membership_created = Membership.objects.get_or_create(
            user=user, organization=organization, defaults={"role": role}
        )
        if membership_created and role == Role.STAFF:
            membership.locations.set([locations[0]])
        if role in (Role.ADMINISTRATOR, Role.MANAGER):
            _demo_two_step_set_up(user)
        users[role] = user
    return DemoTenancy(organization=organization, created=created, locations=locations, users=users)


# The demo clinic's profile: a made-up EIN and people (the SSN digits are not real; 555 numbers).
DEMO_EIN = "54-1234821"
DEMO_PEOPLE = [
    dict(first_name="Priya", last_name="Natarajan", title="Medical Director and CEO", email=f"priya.natarajan@{EMAIL_DOMAIN}",
         phone="+18045550131", dob="1974-03-18", ssn_last4="0418", is_owner=True, ownership_percent=Decimal("60"), is_controller=True,
         address_line1="2101 Monument Avenue", city="Richmond", state="VA", postal_code="23220"),
    dict(first_name="Daniel", last_name="Whitaker", title="Partner physician", email=f"daniel.whitaker@{EMAIL_DOMAIN}",
         phone="+18045550132", dob="1979-11-02", ssn_last4="7730", is_owner=True, ownership_percent=Decimal("40"), is_controller=False,
         address_line1="14 Cary Street Road", city="Richmond", state="VA", postal_code="23221-3012"),
]


def demo_logo_png() -> bytes:
    """A simple logo for the demo clinic, drawn here (a teal circle with a white cross)."""
    import io

    from PIL import Image, ImageDraw

    image = Image.new("RGBA", (256, 256), (0, 0, 0, 0))
    draw = ImageDraw.Draw(image)
    draw.ellipse((8, 8, 248, 248), fill=(11, 122, 117, 255))
    draw.rectangle((104, 56, 152, 200), fill=(255, 255, 255, 255))
    draw.rectangle((56, 104, 200, 152), fill=(255, 255, 255, 255))
    out = io.BytesIO()
    image.save(out, format="PNG", optimize=True)
    return out.getvalue()


def _demo_profile_complete(organization: Organization) -> None:
    """The demo clinic's legal, public and ownership details, where they are missing (a clinic
    seeded by an earlier release gets them too; what someone changed since is kept)."""
    from django.utils import timezone

    changed = []
    for field, value in (("business_type", BusinessType.COMPANY), ("industry_code", IndustryCode.DOCTORS)):
        if not getattr(organization, field):
            setattr(organization, field, value)
            changed.append(field)
    if not organization.tax_id_encrypted:
        organization.tax_id_encrypted = secret_encrypt(DEMO_EIN)
        organization.tax_id_last4 = DEMO_EIN[-4:]
        changed += ["tax_id_encrypted", "tax_id_last4"]
    if not organization.logo_png:
        organization.logo_png = demo_logo_png()
        organization.logo_updated_at = timezone.now()
        changed += ["logo_png", "logo_updated_at"]
    if changed:
        organization.save(update_fields=changed)
    if OrganizationPerson.objects.filter(organization=organization).exists():
        return
    for person in DEMO_PEOPLE:
        values = dict(person)
        dob, ssn_last4 = values.pop("dob"), values.pop("ssn_last4")
        OrganizationPerson.objects.create(
            organization=organization, dob_encrypted=secret_encrypt(dob), ssn_last4_encrypted=secret_encrypt(ssn_last4), **values
        )


def demo_totp_key() -> str:
    """The demo authenticator's key as django-otp stores it (hex)."""
    return base64.b32decode(DEMO_TOTP_SECRET.replace(" ", "")).hex()


def demo_sign_in_code() -> str:
    """The code an authenticator app with the demo key shows now."""
    return f"{TOTP(bytes.fromhex(demo_totp_key())).token():06d}"


def _demo_two_step_set_up(user: User) -> None:
    """The demo key and backup codes for ``user``, once: a user who set up their own keeps theirs."""
    if TOTPDevice.objects.filter(user=user).exists():
        return
    TOTPDevice.objects.create(user=user, key=demo_totp_key(), name=AUTHENTICATOR_NAME, confirmed=True)
    device = StaticDevice.objects.create(user=user, name=BACKUP_CODES_NAME, confirmed=True)
    StaticToken.objects.bulk_create(
        StaticToken(device=device, token=backup_code_hash(device_id=device.pk, code=code)) for code in DEMO_BACKUP_CODES
    )


def demo_two_step_lines() -> list[str]:
    return [
        "  Administrators and managers then enter a code from an authenticator app with the demo key",
        f"    {DEMO_TOTP_SECRET}",
        f"    (current code {demo_sign_in_code()}; `DEBUG=true .venv/bin/python manage.py demo_sign_in_code` prints the next),",
        f"    or a backup code, each once per user: {DEMO_BACKUP_CODES[0]} to {DEMO_BACKUP_CODES[-1]}.",
    ]


def demo_tenancy_summary(organization: Organization) -> list[str]:
    """The lines the seed prints about the tenancy: the sign-ins come last, after every app's lines."""
    lines = ["Demo sign-ins (development only):"]
    for email, _first, _last, role in USERS:
        note = " (Downtown only)" if role == Role.STAFF else ""
        lines.append(f"  {Role(role).label:<18} {email}{note}")
    lines.append(f"  password for each:  {PASSWORD}")
    lines.extend(demo_two_step_lines())
    return lines
