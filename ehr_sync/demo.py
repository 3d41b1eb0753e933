"""The demo clinic's patient mirror for `make dev`: about 200 patients with appointments and balances.

Called by ``manage.py seed_demo_clinic`` (lumapay/management/commands/) after the tenancy and before
the payments; every draw comes from the seed's one ``random.Random``, so the demo is the same each time.
"""

from __future__ import annotations

import random
import unicodedata
from datetime import date, datetime, timedelta

from django.utils import timezone

from org_profile.models import Location, Organization

from .enums import AppointmentStatus, PreferredLanguage
from .models import Appointment, Balance, Patient

PATIENT_COUNT = 200
# Appointments reach this many days back (and 30 days ahead); the payments span the same 90 days.
DAYS = 90

FIRST_NAMES = [
    "James", "Mary", "Robert", "Patricia", "John", "Jennifer", "Michael", "Linda", "David", "Elizabeth",
    "William", "Barbara", "Richard", "Susan", "Joseph", "Jessica", "Thomas", "Sarah", "Charles", "Karen",
    "Daniel", "Nancy", "Matthew", "Lisa", "Anthony", "Betty", "Mark", "Sandra", "Steven", "Ashley",
    "Kevin", "Emily", "Brian", "Michelle", "Aisha", "Wei", "Priya", "Kwame", "Hannah", "Noah",
]
LAST_NAMES = [
    "Smith", "Johnson", "Williams", "Brown", "Jones", "Miller", "Davis", "Wilson", "Anderson", "Taylor",
    "Thomas", "Moore", "Jackson", "Martin", "Lee", "Thompson", "White", "Harris", "Clark", "Lewis",
    "Robinson", "Walker", "Young", "Allen", "King", "Wright", "Scott", "Green", "Baker", "Nguyen",
    "Patel", "Kim", "Chen", "Okafor", "Hughes", "Bennett", "Foster", "Price", "Coleman", "Sullivan",
]
HISPANIC_FIRST_NAMES = [
    "José", "María", "Juan", "Guadalupe", "Luis", "Carmen", "Carlos", "Rosa", "Jorge", "Ana",
    "Miguel", "Lucía", "Alejandro", "Sofía", "Javier", "Valentina", "Diego", "Isabel", "Ricardo", "Elena",
]
HISPANIC_LAST_NAMES = [
    "García", "Rodríguez", "Martínez", "Hernández", "López", "González", "Pérez", "Sánchez", "Ramírez",
    "Torres", "Flores", "Rivera", "Gómez", "Díaz", "Cruz", "Morales", "Reyes", "Gutiérrez", "Ortiz", "Castillo",
]
PROVIDERS = ["Dr. Alex Chen", "Dr. Priya Raman", "Dr. Samuel Ortiz", "Dr. Grace Whitfield", "Jordan Blake, NP"]
COPAYS = [1500, 2000, 2500, 3000, 3500, 4000, 5000]


def demo_patients_build(
    *, organization: Organization, locations: list[Location], rng: random.Random, now: datetime
) -> None:
    """Patients, their appointments and balances, unless the organization has patients already."""
    if Patient.objects.filter(organization=organization).exists():
        return
    patients = []
    for number in range(1, PATIENT_COUNT + 1):
        hispanic = rng.random() < 0.3
        first = rng.choice(HISPANIC_FIRST_NAMES if hispanic else FIRST_NAMES)
        last = rng.choice(HISPANIC_LAST_NAMES if hispanic else LAST_NAMES)
        spanish = hispanic and rng.random() < 0.6
        # About one patient in twenty-five can be reached neither way (staff must call them).
        reachable = rng.random() >= 0.04
        has_email = reachable and rng.random() < 0.85
        has_phone = rng.random() < 0.8
        sms_consent = reachable and has_phone and (not has_email or rng.random() < 0.7)
        # "García" writes "garcia" in an address (its accent taken off, not the letter dropped).
        ascii_last = unicodedata.normalize("NFKD", last).encode("ascii", "ignore").decode().lower() or "patient"
        patients.append(
            Patient(
                organization=organization,
                first_name=first,
                last_name=last,
                date_of_birth=date(1938, 1, 1) + timedelta(days=rng.randrange(0, 365 * 82)),
                email=f"{first[0].lower()}.{ascii_last}{number}@mail.example" if has_email else "",
                mobile_phone=f"+1804555{number:04d}" if has_phone else "",
                preferred_language=PreferredLanguage.SPANISH if spanish else PreferredLanguage.ENGLISH,
                sms_consent=sms_consent,
                sms_consent_at=now - timedelta(days=rng.randrange(100, 900)) if sms_consent else None,
                external_ehr_id=f"DEMO-{number:06d}",
            )
        )
    patients = Patient.objects.bulk_create(patients)

    appointments, balances = [], []
    for patient in patients:
        for _ in range(rng.choice([0, 1, 1, 2, 2, 3])):
            offset_days = rng.randrange(-DAYS, 30)
            starts_at = timezone.localtime(now + timedelta(days=offset_days)).replace(
                hour=rng.randrange(8, 17), minute=rng.choice([0, 15, 30, 45]), second=0, microsecond=0
            )
            if starts_at > now:
                status = AppointmentStatus.BOOKED
            else:
                status = rng.choices(
                    [AppointmentStatus.FULFILLED, AppointmentStatus.NO_SHOW, AppointmentStatus.CANCELLED],
                    weights=[85, 7, 8],
                )[0]
            appointments.append(
                Appointment(
                    organization=organization,
                    patient=patient,
                    location=rng.choice(locations),
                    provider_name=rng.choice(PROVIDERS),
                    starts_at=starts_at,
                    status=status,
                    copay_cents=rng.choice(COPAYS),
                    external_ehr_id=f"DEMO-APT-{len(appointments) + 1:06d}",
                )
            )
        if rng.random() < 0.6:
            balances.append(
                Balance(
                    organization=organization,
                    patient=patient,
                    amount_due_cents=rng.choice([0, 0, 4500, 8250, 12000, 18575, 26000, 43210, 61500]),
                    as_of=now - timedelta(days=rng.randrange(0, 20)),
                )
            )
    Appointment.objects.bulk_create(appointments)
    Balance.objects.bulk_create(balances)


def demo_patients_summary(organization: Organization) -> list[str]:
    return [
        f"  {Location.objects.filter(organization=organization).count()} locations, "
        f"{Patient.objects.filter(organization=organization).count()} patients, "
        f"{Appointment.objects.filter(organization=organization).count()} appointments, "
        f"{Balance.objects.filter(organization=organization).count()} balances"
    ]


# -- the demo clinic's EHR connection (make dev runs a local FHIR server: ehr_sync/demo_fhir_server.py)

DEMO_EHR_NAME = "Demo EHR (local FHIR server)"
DEMO_EHR_PATIENTS = 30
DEMO_HL7_NAME = "Demo EHR (HL7 feed)"
DEMO_HL7_FACILITY = "DEMO-EHR"
# The demo EHR's places and the demo clinic's locations they are.
DEMO_EHR_LOCATIONS = {"Downtown": "loc-downtown", "Northside": "loc-northside"}


def demo_ehr_build(*, organization: Organization, base_url: str) -> list[str]:
    """Fill the demo EHR once (synthetic patients, appointments, copays and balances), connect the
    demo clinic to it, tell its locations which EHR places they are, and run the first sync (once).
    Returns the lines the seed command prints."""
    from .connectors import connection_sync
    from .demo_fhir_server import (
        DEMO_BALANCE_EXTENSION_URL,
        DEMO_SMS_CONSENT_EXTENSION_URL,
        DemoFhirData,
        demo_fhir_patient_count,
        demo_fhir_seed,
    )
    from .enums import BalanceAdapter, ConnectionOption, EhrConnectionKind, FhirAuth, PostingAdapter
    from .models import EhrConnection

    if demo_fhir_patient_count(base_url) == 0:
        demo_fhir_seed(base_url, DemoFhirData.build(patients=DEMO_EHR_PATIENTS, seed=2026))
    for name, ehr_id in DEMO_EHR_LOCATIONS.items():
        Location.objects.filter(organization=organization, name=name, ehr_location_id="").update(ehr_location_id=ehr_id)
    connection, created = EhrConnection.objects.get_or_create(
        organization=organization,
        name=DEMO_EHR_NAME,
        defaults={
            "kind": EhrConnectionKind.FHIR,
            "base_url": base_url,
            "sync_every_minutes": 15,
            "next_sync_at": timezone.now(),
            "options": {
                ConnectionOption.AUTH: FhirAuth.BEARER,  # no token: the local server needs none
                ConnectionOption.BALANCE_ADAPTER: BalanceAdapter.CUSTOM,
                ConnectionOption.BALANCE_EXTENSION_URL: DEMO_BALANCE_EXTENSION_URL,
                ConnectionOption.SMS_CONSENT_EXTENSION_URL: DEMO_SMS_CONSENT_EXTENSION_URL,
                ConnectionOption.APPOINTMENT_WINDOW_DAYS: 30,
            },
        },
    )
    if connection.base_url != base_url:
        EhrConnection.objects.filter(pk=connection.pk).update(base_url=base_url)
    if ConnectionOption.POSTING_ENABLED not in (connection.options or {}):
        # Payments made in the demo from now on are posted to the demo EHR as PaymentReconciliations
        # (ehr_sync/posting.py); the seeded history, older than this moment, is not.
        connection.options = {
            **(connection.options or {}),
            ConnectionOption.POSTING_ENABLED: True,
            ConnectionOption.POSTING_ADAPTER: PostingAdapter.PAYMENT_RECONCILIATION,
            ConnectionOption.POSTING_SINCE: timezone.now().isoformat(),
        }
        EhrConnection.objects.filter(pk=connection.pk).update(options=connection.options)
    # The same EHR's HL7 v2 feed: `make dev` runs the MLLP listener; messages from DEMO-EHR are this clinic's.
    EhrConnection.objects.get_or_create(
        organization=organization,
        name=DEMO_HL7_NAME,
        defaults={
            "kind": EhrConnectionKind.HL7_MLLP,
            "sync_every_minutes": 0,
            "options": {ConnectionOption.SENDING_FACILITY: DEMO_HL7_FACILITY},
        },
    )
    lines = [
        f"  EHR connection “{DEMO_EHR_NAME}” to {base_url}; payments are posted back to it "
        f"(see {base_url}/PaymentReconciliation)",
        f"  EHR connection “{DEMO_HL7_NAME}”: HL7 v2 messages from {DEMO_HL7_FACILITY} (MSH-4)",
    ]
    if connection.last_success_at is None:
        run = connection_sync(connection_id=connection.pk)
        if run is not None:
            lines.append(
                f"  First sync: {run.get_status_display().lower()}, {run.received} records in, "
                f"{run.created} created, {run.rejected} rejected{': ' + run.error if run.error else ''}"
            )
    return lines
