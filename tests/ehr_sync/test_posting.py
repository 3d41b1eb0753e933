"""The wire of a posting to the EHR (ehr_sync/posting.py): FHIR conditional creates against a real
sekmet-fhir server (through tests/fhir_server.py's proxy, which injects what sekmet cannot: a
refusal, an answer that never comes back), and HL7 v2 DFT^P03 over real MLLP on loopback to the
test EHR of tests/mllp_ehr.py."""

import datetime

import hl7
import pytest
import requests
from cryptography.fernet import Fernet

from ehr_sync.enums import ConnectionOption, EhrConnectionKind, PostingAdapter
from ehr_sync.models import EhrConnection
from ehr_sync.posting import (
    DEFAULT_IDENTIFIER_SYSTEM,
    PostingOutcome,
    PostingRecord,
    control_id_of,
    dft_p03,
    posting_send,
)
from tests.fhir_server import fhir_test_server_start, fhir_test_server_stop
from tests.mllp_ehr import MllpEhr
from tests.waiting import wait_until

pytestmark = pytest.mark.django_db

AT = datetime.datetime(2026, 11, 29, 15, 30, tzinfo=datetime.timezone.utc)


@pytest.fixture(autouse=True)
def _credentials_key(settings):
    settings.EHR_CREDENTIALS_KEYS = [Fernet.generate_key().decode()]


@pytest.fixture
def fhir():
    server = fhir_test_server_start()
    yield server
    fhir_test_server_stop(server)


@pytest.fixture
def ehr():
    server = MllpEhr()
    yield server
    server.stop()


def record(**changes):
    values = dict(
        posting_id="5b0f7a8e-3c1d-4e2f-9a6b-0c1d2e3f4a5b", charge_id="sbx_ch_1", kind="payment", amount_cents=2500,
        currency="usd", occurred_at=AT, patient_ehr_id="p-1", appointment_ehr_id="a-1", location_ehr_id="loc-downtown",
    )
    values.update(changes)
    return PostingRecord(**values)


def fhir_connection(organization, fhir, **options):
    return EhrConnection.objects.create(
        organization=organization, name="Clinic EHR", kind=EhrConnectionKind.FHIR, base_url=fhir.base_url,
        options={ConnectionOption.POSTING_ENABLED: True, "timeout_seconds": 5, **options},
    )


def hl7_connection(organization, ehr, **options):
    return EhrConnection.objects.create(
        organization=organization, name="Clinic HL7", kind=EhrConnectionKind.HL7_MLLP,
        options={ConnectionOption.SENDING_FACILITY: "CLINIC", ConnectionOption.POSTING_ENABLED: True,
                 ConnectionOption.OUTBOUND_ADDRESS: ehr.address, "timeout_seconds": 2, **options},
    )


def held(fhir, resource_type, posting_id, system=DEFAULT_IDENTIFIER_SYSTEM):
    bundle = requests.get(
        f"{fhir.local_url}/{resource_type}", params={"identifier": f"{system}|{posting_id}"}, timeout=30
    ).json()
    return [entry["resource"] for entry in bundle.get("entry", [])]


# -- FHIR ------------------------------------------------------------------------------------------


def test_a_fhir_posting_sent_twice_is_one_payment_reconciliation(organization, fhir):
    connection = fhir_connection(organization, fhir)

    first = posting_send(connection, record())
    second = posting_send(connection, record())

    assert first.status == second.status == PostingOutcome.POSTED
    assert first.reference == second.reference and first.reference.startswith("PaymentReconciliation/")
    [resource] = held(fhir, "PaymentReconciliation", record().posting_id)
    assert resource["paymentAmount"] == {"value": 25.0, "currency": "USD"}
    assert resource["paymentDate"] == "2026-11-29"
    assert resource["paymentIdentifier"]["value"] == "sbx_ch_1"
    assert resource["detail"][0]["request"] == {"reference": "Appointment/a-1"}
    assert {"url": "https://lumapay.com/fhir/StructureDefinition/posting-patient",
            "valueReference": {"reference": "Patient/p-1"}} in resource["extension"]
    # Both sends asked for a conditional create.
    assert len(fhir.proxy.asked("POST /fhir/PaymentReconciliation")) == 2


def test_a_refund_is_a_negative_adjustment(organization, fhir):
    connection = fhir_connection(organization, fhir)

    outcome = posting_send(connection, record(posting_id="refund-1", kind="refund", amount_cents=1000))

    assert outcome.is_posted
    [resource] = held(fhir, "PaymentReconciliation", "refund-1")
    assert resource["paymentAmount"]["value"] == -10.0
    assert resource["detail"][0]["type"]["coding"][0]["code"] == "adjustment"


def test_the_charge_item_adapter_with_its_own_identifier_system_also_posts_once(organization, fhir):
    system = "https://ehr.example/lumapay"
    connection = fhir_connection(
        organization, fhir,
        **{ConnectionOption.POSTING_ADAPTER: PostingAdapter.CHARGE_ITEM, ConnectionOption.POSTING_IDENTIFIER_SYSTEM: system},
    )

    assert posting_send(connection, record()).is_posted
    assert posting_send(connection, record()).is_posted

    [item] = held(fhir, "ChargeItem", record().posting_id, system=system)
    assert item["subject"] == {"reference": "Patient/p-1"}
    assert item["priceOverride"] == {"value": -25.0, "currency": "USD"}  # a credit on the account
    assert held(fhir, "PaymentReconciliation", record().posting_id, system=system) == []


def test_a_fhir_refusal_is_failed_in_the_servers_words_and_a_5xx_is_unanswered(organization, fhir):
    connection = fhir_connection(organization, fhir)
    fhir.proxy.fail("/PaymentReconciliation", status=422)

    refused = posting_send(connection, record())

    assert refused.status == PostingOutcome.REFUSED
    assert refused.message == "The FHIR server refused the posting (422): transient."
    fhir.proxy.fail("/PaymentReconciliation", status=503)
    assert posting_send(connection, record()).status == PostingOutcome.UNANSWERED
    assert held(fhir, "PaymentReconciliation", record().posting_id) == []


def test_an_answer_lost_on_the_way_back_is_unanswered_and_the_retry_finds_the_first(organization, fhir):
    connection = fhir_connection(organization, fhir, timeout_seconds=0.5)
    # The proxy holds sekmet's answer past the client's timeout: sekmet created the resource, we never hear.
    fhir.proxy.fail("/PaymentReconciliation", delay_seconds=1.5, times=1)

    lost = posting_send(connection, record())
    assert lost.status == PostingOutcome.UNANSWERED
    # The EHR did take it, once the proxy passed it on.
    wait_until(lambda: len(held(fhir, "PaymentReconciliation", record().posting_id)) == 1, timeout_seconds=10, interval_seconds=0.2)
    [first] = held(fhir, "PaymentReconciliation", record().posting_id)
    again = posting_send(connection, record())

    assert again.is_posted
    assert again.reference == f"PaymentReconciliation/{first['id']}"
    assert len(held(fhir, "PaymentReconciliation", record().posting_id)) == 1


def test_a_patient_without_an_ehr_id_is_refused_without_calling_the_ehr(organization, fhir):
    connection = fhir_connection(organization, fhir)

    outcome = posting_send(connection, record(patient_ehr_id=""))

    assert outcome.status == PostingOutcome.REFUSED
    assert fhir.proxy.asked("POST") == []


# -- HL7 v2 ----------------------------------------------------------------------------------------


def test_the_dft_p03_carries_one_ft1_with_the_postings_id_and_no_name():
    text = dft_p03(record(), receiving_facility="CLINIC")
    message = hl7.parse(text)

    assert str(message.segment("MSH")(9)) == "DFT^P03^DFT_P03"
    assert str(message.segment("MSH")(10)) == control_id_of(record()) == "5b0f7a8e3c1d4e2f9a6b"
    assert str(message.segment("MSH")(6)) == "CLINIC"
    assert str(message.segment("MSH")(7)) == "20261129153000+0000"  # the payment's moment, not the send's
    assert str(message.segment("PID")(3)) == "p-1"
    assert len(message.segment("PID")) <= 4  # nothing after PID-3: no name, birth date or address
    assert str(message.segment("PV1")(19)) == "a-1"
    [ft1] = message.segments("FT1")
    assert (str(ft1(2)), str(ft1(6)), str(ft1(7)), str(ft1(11))) == (
        "5b0f7a8e3c1d4e2f9a6b", "PY", "LUMAPAY-PAYMENT", "-25.00&USD",
    )
    # Every send of the posting is the same message.
    assert dft_p03(record(), receiving_facility="CLINIC") == text


def test_an_aa_posts(organization, ehr):
    outcome = posting_send(hl7_connection(organization, ehr), record())

    assert outcome == PostingOutcome(PostingOutcome.POSTED, reference="5b0f7a8e3c1d4e2f9a6b")
    assert list(ehr.payments) == ["5b0f7a8e3c1d4e2f9a6b"]


@pytest.mark.parametrize("code, label", [("AE", "error"), ("AR", "reject")])
def test_an_ae_or_ar_is_refused_in_the_ehrs_words(organization, ehr, code, label):
    ehr.default = code

    outcome = posting_send(hl7_connection(organization, ehr), record())

    assert outcome.status == PostingOutcome.REFUSED
    assert outcome.message == f"The EHR answered {code} ({label}): Patient account is closed."
    assert ehr.payments == {}


def test_a_lost_ack_or_an_unreachable_ehr_is_unanswered(organization, ehr):
    ehr.default = "drop"
    connection = hl7_connection(organization, ehr)

    assert posting_send(connection, record()) == PostingOutcome(
        PostingOutcome.UNANSWERED, "The EHR closed the connection before acknowledging."
    )
    ehr.default, ehr.ack_delay_seconds = "AA", 3  # an answer later than the connection's 2 s
    assert posting_send(connection, record()) == PostingOutcome(PostingOutcome.UNANSWERED, "The EHR did not acknowledge within 2 s.")
    connection.options[ConnectionOption.OUTBOUND_ADDRESS] = f"127.0.0.1:{_closed_port()}"
    unreachable = posting_send(connection, record())
    assert unreachable.status == PostingOutcome.UNANSWERED
    assert unreachable.message == "The EHR's MLLP listener could not be reached."


def test_no_outbound_address_is_refused(organization, ehr):
    connection = hl7_connection(organization, ehr, **{ConnectionOption.OUTBOUND_ADDRESS: ""})

    outcome = posting_send(connection, record())

    assert outcome.status == PostingOutcome.REFUSED
    assert ehr.received == []


def _closed_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
