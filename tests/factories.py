"""factory_boy factories for every tenant object. Defaults make a valid, contactable patient."""

import datetime

import factory
from django.utils import timezone

from ehr_sync.models import Appointment, Balance, Patient
from org_profile.enums import Role
from org_profile.models import Location, Membership, Organization, User
from transactions.enums import PaymentRequestKind
from transactions.models import PaymentRequest, PaymentRequestDelivery


class OrganizationFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Organization

    name = factory.Sequence(lambda n: f"Riverside Family Medicine {n}")
    slug = factory.Sequence(lambda n: f"riverside-{n}")
    legal_name = factory.LazyAttribute(lambda o: f"{o.name} PLLC")
    address_line1 = "120 Main Street"
    city = "Springfield"
    state = "IL"
    postal_code = "62701"
    support_phone = "+12175550100"
    support_email = "billing@riverside.example"


class LocationFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Location

    organization = factory.SubFactory(OrganizationFactory)
    name = factory.Sequence(lambda n: f"Downtown Clinic {n}")


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = User
        skip_postgeneration_save = True

    email = factory.Sequence(lambda n: f"user{n}@riverside.example")
    username = factory.LazyAttribute(lambda u: u.email)
    first_name = "Dana"
    last_name = factory.Sequence(lambda n: f"Staff{n}")
    password = factory.PostGenerationMethodCall("set_password", "correct horse battery")

    @factory.post_generation
    def _save(obj, create, extracted, **kwargs):
        if create:
            obj.save()


class MembershipFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Membership
        skip_postgeneration_save = True

    user = factory.SubFactory(UserFactory)
    organization = factory.SubFactory(OrganizationFactory)
    role = Role.STAFF

    @factory.post_generation
    def locations(obj, create, extracted, **kwargs):
        if create and extracted:
            obj.locations.set(extracted)


class PatientFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Patient

    organization = factory.SubFactory(OrganizationFactory)
    first_name = "Maria"
    last_name = factory.Sequence(lambda n: f"Lopez{n}")
    date_of_birth = datetime.date(1984, 3, 9)
    email = factory.Sequence(lambda n: f"patient{n}@mail.example")
    mobile_phone = factory.Sequence(lambda n: f"+1217555{n % 10000:04d}")
    sms_consent = True
    sms_consent_at = factory.LazyFunction(timezone.now)
    external_ehr_id = factory.Sequence(lambda n: f"MRN{n:06d}")


class AppointmentFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Appointment

    patient = factory.SubFactory(PatientFactory)
    organization = factory.LazyAttribute(lambda a: a.patient.organization)
    location = factory.LazyAttribute(lambda a: LocationFactory(organization=a.organization))
    provider_name = "Dr. Alex Chen"
    starts_at = factory.LazyFunction(lambda: timezone.now() + datetime.timedelta(days=2))
    copay_cents = 2500


class BalanceFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Balance

    patient = factory.SubFactory(PatientFactory)
    organization = factory.LazyAttribute(lambda b: b.patient.organization)
    amount_due_cents = 12000
    as_of = factory.LazyFunction(timezone.now)


class PaymentRequestFactory(factory.django.DjangoModelFactory):
    """An open copay request, as ``payment_request_send`` leaves it (without its deliveries)."""

    class Meta:
        model = PaymentRequest

    patient = factory.SubFactory(PatientFactory)
    organization = factory.LazyAttribute(lambda r: r.patient.organization)
    location = factory.LazyAttribute(lambda r: LocationFactory(organization=r.organization))
    kind = PaymentRequestKind.COPAY
    billing_item = "Office visit copay"
    amount_cents = 4500
    expires_at = factory.LazyFunction(lambda: timezone.now() + datetime.timedelta(days=30))
    last_sent_at = factory.LazyFunction(timezone.now)


class PaymentRequestDeliveryFactory(factory.django.DjangoModelFactory):
    """A queued e-mail delivery to the request's patient."""

    class Meta:
        model = PaymentRequestDelivery

    payment_request = factory.SubFactory(PaymentRequestFactory)
    organization = factory.LazyAttribute(lambda d: d.payment_request.organization)
    channel = "email"
    destination = factory.LazyAttribute(lambda d: d.payment_request.patient.email)
