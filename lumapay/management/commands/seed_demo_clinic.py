"""Seed a demo clinic for `make dev`: an organization, two locations, one user per role, about 200
patients with appointments and balances, payment requests in every status and a few hundred
transactions over the last 90 days, each with its ledger events and the Sandbox's matching books.

Each app builds its own part (org_profile/demo.py, ehr_sync/demo.py, transactions/demo.py,
payouts/demo.py), lower apps first; this command only composes them, in one database transaction.
Idempotent: everything hangs off the organization slug ``demo-clinic`` and what exists is skipped.
Deterministic: one ``random.Random(2026)`` draws every name, amount and date offset.
"""

from __future__ import annotations

import os
import random

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction as db_transaction
from django.utils import timezone

from ehr_sync.demo import demo_ehr_build, demo_patients_build, demo_patients_summary
from helpcenter.articles import help_articles_sync
from org_profile.demo import demo_tenancy_build, demo_tenancy_summary
from helpcenter.luma_u.demo import demo_luma_u_build, demo_luma_u_summary
from payouts.demo import demo_payouts_build, demo_payouts_summary
from transactions.demo import demo_card_on_file_build, demo_payments_build, demo_payments_summary

SEED = 2026


class Command(BaseCommand):
    help = "Create (once) the demo clinic that `make dev` signs in to. Development only."

    def add_arguments(self, parser):
        parser.add_argument(
            "--force",
            action="store_true",
            help="seed even with DEBUG off (the demo users' password is printed and public)",
        )

    def handle(self, *args, force: bool = False, **options):
        if not settings.DEBUG and not force:
            raise CommandError(
                "seed_demo_clinic creates users whose password is public; it runs only with DEBUG=true "
                "(or --force, for a throwaway demo server)."
            )
        rng = random.Random(SEED)
        now = timezone.now()
        with db_transaction.atomic():
            tenancy = demo_tenancy_build()
            organization = tenancy.organization
            demo_patients_build(organization=organization, locations=tenancy.locations, rng=rng, now=now)
            demo_payments_build(
                organization=organization, locations=tenancy.locations, users=tenancy.users, rng=rng, now=now
            )
            # The Sandbox pays the payments out, and the payouts are reconciled (payouts/demo.py).
            demo_payouts_build(organization=organization, now=now)
            # Luma U: some progress for the staff user and a completed track for the manager.
            demo_luma_u_build(organization=organization, users=tenancy.users)
        verb = "Created" if tenancy.created else "Already seeded:"
        lines = [
            f"{verb} {organization.name} (slug {organization.slug}), sandbox payments.",
            *demo_patients_summary(organization),
            *demo_payments_summary(organization),
            *demo_payouts_summary(organization),
            *demo_luma_u_summary(organization),
            *demo_tenancy_summary(organization),
        ]
        # `make dev` runs the demo clinic's EHR (ehr_sync/demo_fhir_server.py) and says where.
        if os.environ.get("DEMO_FHIR_URL"):
            lines += demo_ehr_build(organization=organization, base_url=os.environ["DEMO_FHIR_URL"])
            # A card on file for one of the EHR's patients: holds and payment plans to try at once.
            with db_transaction.atomic():
                lines += demo_card_on_file_build(organization=organization, now=now)
        # The Help Center's articles, from helpcenter/articles/*.md (manage.py help_articles_sync).
        counts = help_articles_sync()
        lines.append("Help Center articles: {created} created, {updated} updated, {unchanged} unchanged.".format(**counts))
        for line in lines:
            self.stdout.write(line)
