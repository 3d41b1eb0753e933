import base64
from decimal import Decimal

from django.contrib.auth.models import AbstractUser, UserManager
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q
from django.db.models.functions import Lower

from .enums import BusinessType, IndustryCode, PaymentGateway, Role


class StaffUserManager(UserManager):
    def _create_user(self, email, password, **extra_fields):
        email = self.normalize_email(email)
        user = self.model(email=email, username=email, **extra_fields)
        user.set_password(password)
        user.save(using=self._db)
        return user

    def create_user(self, email=None, password=None, **extra_fields):
        extra_fields.setdefault("is_staff", False)
        extra_fields.setdefault("is_superuser", False)
        return self._create_user(email, password, **extra_fields)

    def get_by_natural_key(self, username):
        # Sign-in by e-mail ignores case, as the unique constraint does.
        return self.get(email__iexact=username)

    def create_superuser(self, email=None, password=None, **extra_fields):
        extra_fields.setdefault("is_staff", True)
        extra_fields.setdefault("is_superuser", True)
        return self._create_user(email, password, **extra_fields)


class User(AbstractUser):
    """A person who signs in: clinic staff, or a platform operator (``is_staff``) for Django admin.

    Signs in with the e-mail address, which is unique regardless of case. Patients are not users.
    """

    email = models.EmailField("e-mail address", unique=True)

    USERNAME_FIELD = "email"
    REQUIRED_FIELDS: list[str] = []

    objects = StaffUserManager()

    class Meta:
        constraints = [models.UniqueConstraint(Lower("email"), name="user_email_unique_ci")]

    def __str__(self) -> str:
        return self.get_full_name() or self.email


# How long a member may leave LumaPay open without activity before being signed out, in minutes.
IDLE_TIMEOUT_MINUTES_RANGE = (5, 60)


def default_refund_roles() -> list[str]:
    return [Role.ADMINISTRATOR, Role.MANAGER]


def default_saved_card_roles() -> list[str]:
    return [Role.ADMINISTRATOR, Role.MANAGER]


# What one charge or hold of a card on file may take unless an administrator changes it: enough
# for a copay or a balance after insurance, small enough that a mistake (or a stolen sign-in) is
# not a $100,000 charge on a patient's card.
SAVED_CARD_CHARGE_MAX_CENTS_DEFAULT = 2_000_00


class Organization(models.Model):
    """A tenant: a practice or health system. Every tenant-owned row points at one."""

    name = models.CharField(max_length=200)
    slug = models.SlugField(max_length=80, unique=True)
    payment_gateway = models.CharField(max_length=20, choices=PaymentGateway.choices, default=PaymentGateway.SANDBOX)
    currency = models.CharField(max_length=3, default="usd")
    timezone = models.CharField(max_length=64, default="America/New_York")
    refund_roles = models.JSONField(
        default=default_refund_roles, help_text="the roles that may refund a payment"
    )
    idle_timeout_minutes = models.PositiveSmallIntegerField(
        default=15,
        validators=[MinValueValidator(IDLE_TIMEOUT_MINUTES_RANGE[0]), MaxValueValidator(IDLE_TIMEOUT_MINUTES_RANGE[1])],
        help_text="members are signed out after this many minutes without activity (5 to 60)",
    )
    # Cards on file: who may charge one, hold an amount on it, capture or release a hold; and the
    # most one charge or hold may take. Administrators edit both (org_profile.services).
    saved_card_roles = models.JSONField(
        default=default_saved_card_roles,
        help_text="the roles that may charge a card on file, hold an amount on it, and capture or release a hold",
    )
    saved_card_charge_max_cents = models.BigIntegerField(
        default=SAVED_CARD_CHARGE_MAX_CENTS_DEFAULT,
        validators=[MinValueValidator(1)],
        help_text="the most one charge or hold of a card on file may take, in cents",
    )
    # Administrators and managers always sign in in two steps; this asks it of everyone.
    mfa_required_for_everyone = models.BooleanField(
        "two-step sign-in for everyone",
        default=False,
        help_text="every member signs in with a code from an authenticator app, not only administrators and managers",
    )

    # Legal information (what a processor needs to know about the business). The full EIN is kept
    # encrypted (org_profile.profile_secrets); pages and the audit trail show its last 4 only.
    legal_name = models.CharField(max_length=200, blank=True)
    business_type = models.CharField(max_length=20, choices=BusinessType.choices, blank=True)
    tax_id_encrypted = models.TextField("tax ID (encrypted)", blank=True, editable=False)
    tax_id_last4 = models.CharField("tax ID (last 4)", max_length=4, blank=True)
    industry_code = models.CharField("industry code (MCC)", max_length=4, choices=IndustryCode.choices, blank=True)
    address_line1 = models.CharField(max_length=200, blank=True)
    address_line2 = models.CharField(max_length=200, blank=True)
    city = models.CharField(max_length=100, blank=True)
    state = models.CharField(max_length=50, blank=True)
    postal_code = models.CharField(max_length=20, blank=True)

    # Public-facing information: what patients see on payment pages, e-mails and receipts.
    public_name = models.CharField(max_length=200, blank=True)
    support_phone = models.CharField(max_length=30, blank=True)
    support_email = models.EmailField(blank=True)
    website = models.URLField(blank=True)
    statement_descriptor = models.CharField(max_length=22, blank=True)
    # The logo, as the PNG LumaPay made of the upload (at most LOGO_MAX_SIDE pixels a side): pay
    # pages and PDF receipts show it inline (a data: URI), with no media server.
    logo_png = models.BinaryField(null=True, blank=True, editable=False)
    logo_updated_at = models.DateTimeField(null=True, blank=True, editable=False)

    # Stripe Connect: the clinic's connected account and what Stripe last said about it. Written
    # by transactions.services.stripe_connect only (onboarding, and account.updated events).
    stripe_account_id = models.CharField(max_length=100, null=True, blank=True, unique=True)
    stripe_charges_enabled = models.BooleanField(default=False)
    stripe_payouts_enabled = models.BooleanField(default=False)
    stripe_details_submitted = models.BooleanField(default=False)
    stripe_requirements_due = models.JSONField(
        default=list, blank=True, help_text="what Stripe still needs (currently due and past due)"
    )
    stripe_disabled_reason = models.CharField(max_length=100, blank=True)
    stripe_requirements = models.JSONField(
        default=dict,
        blank=True,
        help_text="Stripe's requirements by urgency: currently_due, past_due and eventually_due",
    )
    stripe_current_deadline = models.DateTimeField(
        null=True, blank=True, help_text="when what is currently due must be given to Stripe"
    )
    stripe_disconnected_at = models.DateTimeField(
        null=True, blank=True, help_text="when the clinic disconnected LumaPay from its Stripe account"
    )
    stripe_account_updated_at = models.DateTimeField(
        null=True, blank=True, help_text="when Stripe reported the account state above"
    )

    # The platform's fee on every charge (Stripe's application_fee_amount), set by operators in the
    # admin: a percent of the charge and a fixed amount, either or both possibly zero. How it is
    # worked out and rounded: org_profile.fees.platform_fee_cents.
    platform_fee_percent = models.DecimalField(
        max_digits=5,
        decimal_places=2,
        default=Decimal("0"),
        validators=[MinValueValidator(Decimal("0")), MaxValueValidator(Decimal("100"))],
        help_text="percent of each charge the platform keeps, 0 to 100 (2.5 means 2.5%)",
    )
    platform_fee_fixed_cents = models.BigIntegerField(
        default=0,
        validators=[MinValueValidator(0), MaxValueValidator(100_000)],
        help_text="fixed amount the platform keeps on each charge, in cents (30 means $0.30), 0 to 100000",
    )

    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.CheckConstraint(
                condition=Q(platform_fee_percent__gte=0) & Q(platform_fee_percent__lte=100),
                name="organization_platform_fee_percent_range",
            ),
            models.CheckConstraint(
                condition=Q(platform_fee_fixed_cents__gte=0) & Q(platform_fee_fixed_cents__lte=100_000),
                name="organization_platform_fee_fixed_range",
            ),
            models.CheckConstraint(
                condition=Q(idle_timeout_minutes__gte=IDLE_TIMEOUT_MINUTES_RANGE[0])
                & Q(idle_timeout_minutes__lte=IDLE_TIMEOUT_MINUTES_RANGE[1]),
                name="organization_idle_timeout_minutes_range",
            ),
            models.CheckConstraint(
                condition=Q(saved_card_charge_max_cents__gt=0), name="organization_saved_card_charge_max_positive"
            ),
        ]

    def __str__(self) -> str:
        return self.name

    def role_may_refund(self, role: str) -> bool:
        return role in self.refund_roles

    def role_may_use_saved_cards(self, role: str) -> bool:
        """May charge a card on file, hold an amount on it, and capture or release a hold."""
        return role in self.saved_card_roles

    @property
    def display_name(self) -> str:
        return self.public_name or self.name

    @property
    def logo_data_uri(self) -> str:
        """The logo for an <img> on a pay page or in a PDF receipt ("" without one)."""
        if not self.logo_png:
            return ""
        return "data:image/png;base64," + base64.b64encode(bytes(self.logo_png)).decode()

    @property
    def stripe_connected(self) -> bool:
        """Has a Stripe account LumaPay may act on (not disconnected by the clinic)."""
        return bool(self.stripe_account_id) and self.stripe_disconnected_at is None

    @property
    def address_lines(self) -> list[str]:
        city_line = " ".join(p for p in [f"{self.city}," if self.city else "", self.state, self.postal_code] if p)
        return [line for line in [self.address_line1, self.address_line2, city_line] if line]


class Location(models.Model):
    """A sub-account of an organization: a clinic site or department."""

    organization = models.ForeignKey(Organization, on_delete=models.PROTECT, related_name="locations")
    name = models.CharField(max_length=200)
    address = models.CharField(max_length=300, blank=True)
    phone = models.CharField(max_length=30, blank=True)
    is_active = models.BooleanField(default=True)
    # The EHR's id for this place (FHIR Location id, HL7 PV1-3 point of care), so synced
    # appointments land here; without it, the EHR's name for the place must match ``name``.
    ehr_location_id = models.CharField(max_length=100, blank=True)

    class Meta:
        ordering = ["name"]
        constraints = [models.UniqueConstraint(fields=["organization", "name"], name="location_name_unique_per_org")]

    def __str__(self) -> str:
        return self.name


class Membership(models.Model):
    """A user's place in one organization: their role and, for sub-account users, their locations.

    One per (user, organization). Staff with no locations see nothing location-bound.
    """

    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="memberships")
    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=20, choices=Role.choices, default=Role.STAFF)
    locations = models.ManyToManyField(Location, blank=True, related_name="memberships")
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["user", "organization"], name="membership_unique_per_org")]

    def __str__(self) -> str:
        return f"{self.user} · {self.organization} · {self.get_role_display()}"

    @property
    def is_manager_or_above(self) -> bool:
        return self.role in (Role.ADMINISTRATOR, Role.MANAGER)

    @property
    def sees_all_locations(self) -> bool:
        return self.role != Role.STAFF


class OrganizationPerson(models.Model):
    """Someone Stripe (and the card networks' know-your-customer rules) asks about: an owner of 25%
    or more of the business, or its controller (the representative who manages it).

    The date of birth and the last 4 digits of the SSN are kept encrypted
    (org_profile.profile_secrets) and never shown again once entered: pages say "on file".
    """

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="people")
    first_name = models.CharField(max_length=100)
    last_name = models.CharField(max_length=100)
    title = models.CharField(max_length=100, blank=True)
    email = models.EmailField(blank=True)
    phone = models.CharField(max_length=30, blank=True)
    dob_encrypted = models.TextField(blank=True, editable=False)
    ssn_last4_encrypted = models.TextField(blank=True, editable=False)
    address_line1 = models.CharField(max_length=200, blank=True)
    address_line2 = models.CharField(max_length=200, blank=True)
    city = models.CharField(max_length=100, blank=True)
    state = models.CharField(max_length=2, blank=True)
    postal_code = models.CharField(max_length=10, blank=True)
    is_owner = models.BooleanField(default=False)
    ownership_percent = models.DecimalField(max_digits=5, decimal_places=2, null=True, blank=True)
    is_controller = models.BooleanField("controller (representative)", default=False)
    stripe_person_id = models.CharField(max_length=100, blank=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["last_name", "first_name", "pk"]
        constraints = [
            models.CheckConstraint(
                condition=Q(is_owner=False) | (Q(ownership_percent__gte=25) & Q(ownership_percent__lte=100)),
                name="organization_person_owner_percent_range",
            ),
            models.CheckConstraint(
                condition=Q(is_owner=True) | Q(is_controller=True), name="organization_person_owner_or_controller"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.first_name} {self.last_name}"

    @property
    def full_name(self) -> str:
        return f"{self.first_name} {self.last_name}".strip()
