"""What the transaction page and the posting files page read of postings to the EHR."""

from __future__ import annotations

from dataclasses import dataclass

from ehr_sync.enums import ConnectionOption, EhrConnectionKind
from ehr_sync.models import EhrConnection

from ..models import EhrPosting, Transaction


def posting_connections():
    """Every connection that posts back: active FHIR or HL7 connections with posting on."""
    return EhrConnection.objects.filter(
        is_active=True,
        kind__in=(EhrConnectionKind.FHIR, EhrConnectionKind.HL7_MLLP),
        **{f"options__{ConnectionOption.POSTING_ENABLED}": True},
    )


def posting_connection_for(organization_id: int) -> EhrConnection | None:
    """The connection the organization posts through: the first active FHIR or HL7 connection
    with posting on, or None (the organization gets the daily posting file)."""
    return posting_connections().filter(organization_id=organization_id).order_by("pk").first()


@dataclass(frozen=True)
class PostingPanel:
    """The transaction page's "Posting to the EHR" section: its postings, or where its money goes
    instead (the daily posting file) when the organization posts through no connection."""

    postings: list[EhrPosting]
    connection: EhrConnection | None


def transaction_ehr_postings(*, transaction: Transaction) -> PostingPanel:
    postings = list(EhrPosting.objects.filter(transaction=transaction).select_related("connection").order_by("created_at", "pk"))
    connection = postings[-1].connection if postings else posting_connection_for(transaction.organization_id)
    return PostingPanel(postings=postings, connection=connection)
