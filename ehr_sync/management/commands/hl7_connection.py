"""Map an EHR's sending facility (MSH-4) to a clinic, so its HL7 v2 messages land there."""

from django.core.management.base import BaseCommand, CommandError

from ehr_sync.hl7_feed import hl7_connection_map
from lumapay.errors import ApplicationError
from lumapay.tenant_rls import all_organizations
from org_profile.models import Organization


class Command(BaseCommand):
    help = (
        "Map an EHR's sending facility (MSH-4, and MSH-6 when given) to an organization: its HL7 v2 "
        "messages to the listener are then imported into that organization."
    )

    def add_arguments(self, parser):
        parser.add_argument("--organization", required=True, help="the organization's slug, e.g. demo-clinic")
        parser.add_argument("--sending-facility", required=True, help="MSH-4 as the EHR sends it (its first component)")
        parser.add_argument("--receiving-facility", default="", help="MSH-6, when two clinics' EHRs send the same MSH-4")
        parser.add_argument(
            "--patient-facility", action="append", default=[], dest="patient_facilities",
            help="another facility whose patient ids (PID-3's assigning facility) this clinic shares; repeatable",
        )
        parser.add_argument("--name", default="HL7 feed", help="the connection's name in the organization")

    def handle(self, *args, organization, sending_facility, receiving_facility, patient_facilities, name, **options):
        # An operator's command: finding the organization by its slug reads across clinics.
        with all_organizations():
            found = Organization.objects.filter(slug=organization).first()
        if found is None:
            raise CommandError(f"No organization has the slug '{organization}'.")
        try:
            connection = hl7_connection_map(
                organization=found, actor=None, sending_facility=sending_facility,
                receiving_facility=receiving_facility, patient_facilities=patient_facilities, name=name,
            )
        except ApplicationError as error:
            raise CommandError(error.message) from error
        self.stdout.write(
            f"{found.name}: HL7 messages from facility {connection.options['sending_facility']}"
            + (f" to {connection.options['receiving_facility']}" if connection.options.get("receiving_facility") else "")
            + f" are imported here (connection '{connection.name}', id {connection.pk})."
        )
