"""Re-encrypt every organization's tax ID and its people's dates of birth and SSN digits with the
first key of ORGANIZATION_PROFILE_KEYS."""

from django.core.management.base import BaseCommand
from django.db import transaction

from lumapay.tenant_rls import all_organizations
from org_profile.models import Organization, OrganizationPerson
from org_profile.profile_secrets import secret_rotate


class Command(BaseCommand):
    help = "Re-encrypt the organization profiles' secrets with the first key in ORGANIZATION_PROFILE_KEYS."

    def handle(self, *args, **options):
        organizations = people = 0
        # An operator's command across every clinic (a reviewed cross-clinic step).
        with all_organizations(), transaction.atomic():
            for organization in Organization.objects.select_for_update().exclude(tax_id_encrypted="").order_by("id"):
                organization.tax_id_encrypted = secret_rotate(organization.tax_id_encrypted)
                organization.save(update_fields=["tax_id_encrypted"])
                organizations += 1
            for person in OrganizationPerson.objects.select_for_update().order_by("id"):
                person.dob_encrypted = secret_rotate(person.dob_encrypted)
                person.ssn_last4_encrypted = secret_rotate(person.ssn_last4_encrypted)
                person.save(update_fields=["dob_encrypted", "ssn_last4_encrypted"])
                people += 1
        self.stdout.write(f"Re-encrypted the tax IDs of {organizations} organization(s) and the details of {people} person(s) with the first key.")
