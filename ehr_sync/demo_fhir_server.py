"""A local FHIR R4 server for the demo clinic and the tests: sekmet-fhir, started as its own process
on 127.0.0.1, with its data in a temporary folder, and filled with synthetic patients, appointments,
coverages (copays) and accounts (balances) through the FHIR API itself, so what the sync reads has
gone through a real server's validation, ids, versions and ``meta.lastUpdated``.

    server = demo_fhir_server_start()            # a free port, a fresh temporary data folder
    demo_fhir_seed(server.base_url, DemoFhirData.build(patients=200))
    ...                                          # connect an EhrConnection to server.base_url
    server.stop()

Nothing here touches Django or the database: ``make dev`` and the benchmark use it as well as the
tests. Everything it makes is invented (names from short lists, 555 phone numbers, example.org
addresses): no real patient is ever in it.
"""

from __future__ import annotations

import datetime
import json
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import requests

# Where a vendor keeps a patient's balance on Account (R4 has no balance element): the demo writes
# the one its connection is told to read (``options["balance_extension_url"]``).
DEMO_BALANCE_EXTENSION_URL = "https://demo.lumapay.test/fhir/StructureDefinition/account-balance"
# Where the demo EHR says whether the patient agreed to be texted (``options["sms_consent_extension_url"]``).
DEMO_SMS_CONSENT_EXTENSION_URL = "https://demo.lumapay.test/fhir/StructureDefinition/sms-consent"
COPAY_TYPE_SYSTEM = "http://terminology.hl7.org/CodeSystem/coverage-copay-type"
START_TIMEOUT_SECONDS = 60.0


class DemoFhirServerError(RuntimeError):
    pass


@dataclass
class DemoFhirServer:
    """A running sekmet-fhir process. ``base_url`` ends in /fhir."""

    process: subprocess.Popen
    port: int
    base_url: str
    data_dir: Path
    log_path: Path
    owns_data_dir: bool = True

    @property
    def local_url(self) -> str:
        """Its own address (``base_url`` may be a proxy's in front of it)."""
        return f"http://127.0.0.1:{self.port}/fhir"

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        if self.owns_data_dir:
            shutil.rmtree(self.data_dir, ignore_errors=True)

    def __enter__(self) -> DemoFhirServer:
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop()


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# sekmet 0.1.1 defines search parameters only for the resources its hospital flows use, and
# PaymentReconciliation is not among them: its R4 search parameters (identifier, status, created)
# are added before it serves, so the conditional create of a payment posted back
# (``If-None-Exist: identifier=…``, ehr_sync/posting.py) works as on a conformant server. Without
# them sekmet answers 400 "Unknown search parameter".
SEKMET_BOOT = """
from sekmet.fhir import search_params as sp
sp.PARAMS.setdefault("PaymentReconciliation", {}).update({
    "identifier": sp.SearchParam("identifier", "token", ("identifier",)),
    "status": sp.SearchParam("status", "token", ("status",)),
    "created": sp.SearchParam("created", "date", ("created",)),
})
from sekmet.cli import app
app()
"""


def demo_fhir_server_start(
    *,
    port: int | None = None,
    data_dir: str | Path | None = None,
    public_base_url: str | None = None,
    bearer_tokens: list[str] | None = None,
    smart_clients: list[dict] | None = None,
    token_lifetime_seconds: int = 3600,
    validate_inbound: bool = True,
) -> DemoFhirServer:
    """Start sekmet-fhir on 127.0.0.1 and wait until its CapabilityStatement answers.

    ``public_base_url``: the address its Bundle links and SMART audience name, when clients reach
    it through something in front (a test's fault-injecting proxy); else its own address.
    ``bearer_tokens`` / ``smart_clients`` ({"client_id": …, "jwks": {"keys": [public JWK]}}) turn
    authentication on; without either it answers anyone (loopback only). ``validate_inbound=False``
    lets a test store a resource that breaks the R4 rules, as a faulty EHR might send.
    """
    port = port or free_port()
    owns = data_dir is None
    folder = Path(data_dir) if data_dir else Path(tempfile.mkdtemp(prefix="lumapay-fhir-"))
    folder.mkdir(parents=True, exist_ok=True)
    base_url = (public_base_url or f"http://127.0.0.1:{port}/fhir").rstrip("/")
    auth_types = [kind for kind, wanted in (("bearer", bearer_tokens), ("smart", smart_clients)) if wanted] or ["none"]
    config = {
        "host": "127.0.0.1",
        "port": port,
        "base_url": base_url,
        "data_dir": str(folder),
        "simulator": {"enabled": False},
        # The traffic log keeps every request and response: heavy for a load, and PHI-shaped.
        "log_inbound": False,
        "own_private_key_path": str(folder / "keys" / "sekmet_private.pem"),
        "validation": {"inbound": "strict" if validate_inbound else "off"},
        "server_auth": {
            "types": auth_types,
            "tokens": list(bearer_tokens or []),
            "smart_clients": [{"scopes": "system/*.read", **client} for client in smart_clients or []],
            "token_lifetime": token_lifetime_seconds,
        },
    }
    config_path = folder / "settings.yaml"
    # JSON is YAML: no yaml dependency needed on this side.
    config_path.write_text(json.dumps(config, indent=2))
    log_path = folder / "sekmet.log"
    command = [sys.executable, "-c", SEKMET_BOOT]
    command += ["serve", "--config", str(config_path), "--host", "127.0.0.1", "--port", str(port)]
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            command, cwd=folder, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "SEKMET_CONFIG": str(config_path)}
        )
    server = DemoFhirServer(process, port, base_url, folder, log_path, owns_data_dir=owns)
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            server.stop()
            raise DemoFhirServerError(f"sekmet-fhir exited at start ({process.returncode}); see {log_path}")
        try:
            if requests.get(f"http://127.0.0.1:{port}/fhir/metadata", timeout=2).status_code == 200:
                return server
        except requests.RequestException:
            pass
        time.sleep(0.1)
    server.stop()
    raise DemoFhirServerError(f"sekmet-fhir did not answer on port {port} within {START_TIMEOUT_SECONDS:.0f} s")


# -- synthetic data ----------------------------------------------------------------------------------

FIRST_NAMES = ["Ana", "James", "Mary", "José", "Wei", "Priya", "Kwame", "Lucía", "Noah", "Hannah", "Diego", "Grace"]
LAST_NAMES = ["Ruiz", "Smith", "Nguyen", "García", "Okafor", "Patel", "Chen", "Johnson", "Reyes", "Foster"]
PROVIDERS = [("Alex", "Chen", "Dr. Alex Chen"), ("Priya", "Raman", "Dr. Priya Raman"), ("Samuel", "Ortiz", "Dr. Samuel Ortiz"), ("Jordan", "Blake", "Jordan Blake, NP")]
LOCATIONS = [("loc-downtown", "Downtown Clinic"), ("loc-northside", "Northside Clinic")]
COPAYS_CENTS = [1500, 2000, 2500, 3000, 4000]


@dataclass
class DemoFhirData:
    """Resources to put on the server, as FHIR JSON, each with its id (PUT), so a test or the demo
    knows what to expect."""

    locations: list[dict] = field(default_factory=list)
    practitioners: list[dict] = field(default_factory=list)
    patients: list[dict] = field(default_factory=list)
    appointments: list[dict] = field(default_factory=list)
    coverages: list[dict] = field(default_factory=list)
    accounts: list[dict] = field(default_factory=list)

    def resources(self) -> list[dict]:
        return [*self.locations, *self.practitioners, *self.patients, *self.appointments, *self.coverages, *self.accounts]

    @classmethod
    def build(
        cls,
        *,
        patients: int = 20,
        appointments_per_patient: int = 2,
        seed: int = 7,
        now: datetime.datetime | None = None,
        days_back: int = 30,
        days_ahead: int = 30,
        id_prefix: str = "demo",
    ) -> DemoFhirData:
        """``patients`` patients, each with appointments spread from ``days_back`` ago to
        ``days_ahead`` from now, a coverage with a copay and an account with a balance."""
        rng = random.Random(seed)
        now = now or datetime.datetime.now(datetime.UTC)
        data = cls()
        for location_id, name in LOCATIONS:
            data.locations.append({"resourceType": "Location", "id": location_id, "status": "active", "name": name})
        for number, (given, family, text) in enumerate(PROVIDERS, start=1):
            data.practitioners.append(
                {"resourceType": "Practitioner", "id": f"{id_prefix}-pr-{number}", "name": [{"family": family, "given": [given], "text": text}]}
            )
        for number in range(1, patients + 1):
            patient_id = f"{id_prefix}-p-{number:06d}"
            spanish = rng.random() < 0.25
            phone = f"+1804555{number % 10000:04d}"
            data.patients.append(
                demo_patient(
                    patient_id,
                    first_name=rng.choice(FIRST_NAMES),
                    last_name=rng.choice(LAST_NAMES),
                    birth_date=datetime.date(1940, 1, 1) + datetime.timedelta(days=rng.randrange(0, 365 * 80)),
                    email=f"patient{number}@example.org",
                    mobile_phone=phone,
                    language="es" if spanish else "en",
                    sms_consent=rng.random() < 0.7,
                )
            )
            for visit in range(1, appointments_per_patient + 1):
                starts = now + datetime.timedelta(
                    days=rng.randrange(-days_back, days_ahead + 1), hours=rng.randrange(0, 8)
                )
                starts = starts.replace(minute=0, second=0, microsecond=0)
                past = starts < now
                status = rng.choice(["fulfilled", "fulfilled", "noshow", "cancelled"]) if past else "booked"
                location_id, location_name = rng.choice(LOCATIONS)
                practitioner = rng.choice(data.practitioners)
                data.appointments.append(
                    demo_appointment(
                        f"{id_prefix}-a-{number:06d}-{visit}",
                        patient_id=patient_id,
                        starts_at=starts,
                        status=status,
                        location=(location_id, location_name),
                        practitioner=(practitioner["id"], practitioner["name"][0]["text"]),
                    )
                )
            data.coverages.append(demo_coverage(f"{id_prefix}-cov-{number:06d}", patient_id=patient_id, copay_cents=rng.choice(COPAYS_CENTS)))
            data.accounts.append(
                demo_account(f"{id_prefix}-acc-{number:06d}", patient_id=patient_id, balance_cents=rng.choice([0, 0, 4500, 12000, 31050]))
            )
        return data


def demo_patient(
    patient_id: str,
    *,
    first_name: str,
    last_name: str,
    birth_date: datetime.date,
    email: str = "",
    mobile_phone: str = "",
    language: str = "en",
    sms_consent: bool | None = None,
) -> dict:
    telecom = []
    if mobile_phone:
        telecom.append({"system": "phone", "value": mobile_phone, "use": "mobile"})
    if email:
        telecom.append({"system": "email", "value": email})
    patient = {
        "resourceType": "Patient",
        "id": patient_id,
        "active": True,
        "name": [{"use": "official", "family": last_name, "given": [first_name]}],
        "birthDate": birth_date.isoformat(),
        "telecom": telecom,
        "communication": [
            {"language": {"coding": [{"system": "urn:ietf:bcp:47", "code": language}]}, "preferred": True}
        ],
    }
    if sms_consent is not None:
        patient["extension"] = [{"url": DEMO_SMS_CONSENT_EXTENSION_URL, "valueBoolean": sms_consent}]
    if not telecom:
        del patient["telecom"]
    return patient


def demo_appointment(
    appointment_id: str,
    *,
    patient_id: str,
    starts_at: datetime.datetime,
    status: str = "booked",
    location: tuple[str, str] | None = None,
    practitioner: tuple[str, str] | None = None,
) -> dict:
    participants = [{"actor": {"reference": f"Patient/{patient_id}"}, "status": "accepted"}]
    if practitioner:
        participants.append({"actor": {"reference": f"Practitioner/{practitioner[0]}", "display": practitioner[1]}, "status": "accepted"})
    if location:
        participants.append({"actor": {"reference": f"Location/{location[0]}", "display": location[1]}, "status": "accepted"})
    starts = starts_at.astimezone(datetime.UTC)
    return {
        "resourceType": "Appointment",
        "id": appointment_id,
        "status": status,
        "start": starts.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "end": (starts + datetime.timedelta(minutes=30)).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "participant": participants,
    }


def demo_coverage(coverage_id: str, *, patient_id: str, copay_cents: int, currency: str = "USD") -> dict:
    return {
        "resourceType": "Coverage",
        "id": coverage_id,
        "status": "active",
        "beneficiary": {"reference": f"Patient/{patient_id}"},
        "payor": [{"display": "Demo Health Plan"}],
        "costToBeneficiary": [
            {
                "type": {"coding": [{"system": COPAY_TYPE_SYSTEM, "code": "copay"}]},
                "valueMoney": {"value": copay_cents / 100, "currency": currency},
            }
        ],
    }


def demo_account(
    account_id: str, *, patient_id: str, balance_cents: int, extension_url: str = DEMO_BALANCE_EXTENSION_URL
) -> dict:
    return {
        "resourceType": "Account",
        "id": account_id,
        "status": "active",
        "subject": [{"reference": f"Patient/{patient_id}"}],
        "extension": [{"url": extension_url, "valueMoney": {"value": balance_cents / 100, "currency": "USD"}}],
    }


def demo_fhir_seed(
    base_url: str,
    data: DemoFhirData | list[dict],
    *,
    entries_per_bundle: int = 500,
    headers: dict | None = None,
    session: requests.Session | None = None,
) -> int:
    """PUT every resource (by its id) in transaction bundles of ``entries_per_bundle``: one HTTP
    request and one server transaction per bundle, the fastest way to fill a FHIR server through its
    API. Returns how many resources were written."""
    resources = data.resources() if isinstance(data, DemoFhirData) else list(data)
    http = session or requests.Session()
    written = 0
    for start in range(0, len(resources), entries_per_bundle):
        chunk = resources[start : start + entries_per_bundle]
        bundle = {
            "resourceType": "Bundle",
            "type": "transaction",
            "entry": [
                {
                    "fullUrl": f"{base_url.rstrip('/')}/{r['resourceType']}/{r['id']}",
                    "resource": r,
                    "request": {"method": "PUT", "url": f"{r['resourceType']}/{r['id']}"},
                }
                for r in chunk
            ],
        }
        response = http.post(
            base_url.rstrip("/"),
            data=json.dumps(bundle),
            headers={"Content-Type": "application/fhir+json", "Prefer": "return=minimal", **(headers or {})},
            timeout=600,
        )
        if response.status_code != 200:
            raise DemoFhirServerError(f"The FHIR server refused a seed bundle ({response.status_code}): {response.text[:500]}")
        written += len(chunk)
    return written


def demo_fhir_put(base_url: str, resource: dict, *, headers: dict | None = None) -> dict:
    """PUT one resource (a changed patient, a cancelled appointment) and return it as stored: its
    new ``meta.versionId`` and ``meta.lastUpdated``."""
    response = requests.put(
        f"{base_url.rstrip('/')}/{resource['resourceType']}/{resource['id']}",
        data=json.dumps(resource),
        headers={"Content-Type": "application/fhir+json", **(headers or {})},
        timeout=60,
    )
    if response.status_code not in (200, 201):
        raise DemoFhirServerError(f"The FHIR server refused {resource['resourceType']} ({response.status_code}): {response.text[:500]}")
    return response.json()


# -- the demo EHR of `make dev` -----------------------------------------------------------------------

# `make dev` runs the demo clinic's EHR here, its data kept between runs in .local/fhir.
DEMO_FHIR_PORT = 8090
DEMO_FHIR_DATA_DIR = Path(__file__).resolve().parent.parent / ".local" / "fhir"


def demo_fhir_url() -> str:
    return os.environ.get("DEMO_FHIR_URL") or f"http://127.0.0.1:{os.environ.get('DEMO_FHIR_PORT', DEMO_FHIR_PORT)}/fhir"


def demo_fhir_patient_count(base_url: str) -> int:
    response = requests.get(f"{base_url.rstrip('/')}/Patient", params={"_summary": "count"}, timeout=30)
    response.raise_for_status()
    return int(response.json().get("total") or 0)


def demo_fhir_patient_change(
    base_url: str, patient_id: str, *, family: str = "", given: str = "", email: str = "", phone: str = ""
) -> dict:
    """Change a patient on the demo EHR as its staff would (a new name, e-mail or mobile number):
    the server gives it a new version, and the next sync brings the change in."""
    response = requests.get(f"{base_url.rstrip('/')}/Patient/{patient_id}", timeout=30)
    if response.status_code == 404:
        raise DemoFhirServerError(f"The demo EHR has no Patient/{patient_id}.")
    response.raise_for_status()
    patient = response.json()
    name = (patient.get("name") or [{}])[0]
    if family:
        name["family"] = family
    if given:
        name["given"] = [given]
    patient["name"] = [name, *(patient.get("name") or [])[1:]]
    telecom = [t for t in patient.get("telecom") or [] if not (email and t.get("system") == "email")]
    telecom = [t for t in telecom if not (phone and t.get("system") == "phone" and t.get("use") == "mobile")]
    if email:
        telecom.append({"system": "email", "value": email})
    if phone:
        telecom.append({"system": "phone", "value": phone, "use": "mobile"})
    if telecom:
        patient["telecom"] = telecom
    patient.pop("meta", None)
    return demo_fhir_put(base_url, patient)


def demo_fhir_appointment_book(
    base_url: str, patient_id: str, *, starts_at: datetime.datetime, appointment_id: str = ""
) -> dict:
    """Book a visit for a patient on the demo EHR, at the first of the demo's locations and with its
    first provider, as the clinic's front desk would: the next sync brings it in, with the
    patient's copay from their coverage."""
    base = base_url.rstrip("/")
    if requests.get(f"{base}/Patient/{patient_id}", timeout=30).status_code == 404:
        raise DemoFhirServerError(f"The demo EHR has no Patient/{patient_id}.")
    location_id, location_name = LOCATIONS[0]
    *_, provider = PROVIDERS[0]
    appointment_id = appointment_id or f"{patient_id}-visit-{starts_at.astimezone(datetime.UTC):%Y%m%d%H%M}"
    return demo_fhir_put(
        base_url,
        demo_appointment(
            appointment_id, patient_id=patient_id, starts_at=starts_at,
            location=(location_id, location_name), practitioner=("demo-pr-1", provider),
        ),
    )  # fmt: skip


# The statuses the front desk sets (FHIR R4 Appointment.status), as `change-appointment` takes them.
DEMO_APPOINTMENT_STATUSES = ("booked", "arrived", "fulfilled", "cancelled", "noshow")


def demo_fhir_appointment_change(
    base_url: str, appointment_id: str, *, status: str = "", starts_at: datetime.datetime | None = None
) -> dict:
    """Check a patient in, cancel or reschedule a visit on the demo EHR: the server gives the
    appointment a new version, and the next sync brings the change in."""
    if status and status not in DEMO_APPOINTMENT_STATUSES:
        raise DemoFhirServerError(f"{status!r} is not one of {', '.join(DEMO_APPOINTMENT_STATUSES)}.")
    response = requests.get(f"{base_url.rstrip('/')}/Appointment/{appointment_id}", timeout=30)
    if response.status_code == 404:
        raise DemoFhirServerError(f"The demo EHR has no Appointment/{appointment_id}.")
    response.raise_for_status()
    appointment = response.json()
    if status:
        appointment["status"] = status
    if starts_at is not None:
        starts = starts_at.astimezone(datetime.UTC)
        appointment["start"] = starts.strftime("%Y-%m-%dT%H:%M:%SZ")
        appointment["end"] = (starts + datetime.timedelta(minutes=30)).strftime("%Y-%m-%dT%H:%M:%SZ")
    appointment.pop("meta", None)
    return demo_fhir_put(base_url, appointment)


def _serve_around(command: list[str]) -> int:
    """Run ``command`` with the demo EHR running beside it (DEMO_FHIR_URL set for it); stop the
    EHR when the command ends. An EHR already answering on the port is used as it is."""
    import signal

    # Stopped by a service manager (SIGTERM): stop the EHR too, as Ctrl-C does.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    url = demo_fhir_url()
    try:
        demo_fhir_patient_count(url)
        server = None
        print(f"Demo EHR: using the FHIR server already answering at {url}", flush=True)
    except requests.RequestException:
        port = int(os.environ.get("DEMO_FHIR_PORT", DEMO_FHIR_PORT))
        server = demo_fhir_server_start(port=port, data_dir=DEMO_FHIR_DATA_DIR)
        url = server.base_url
        print(f"Demo EHR: a local FHIR R4 server (sekmet-fhir) at {url}, data in {DEMO_FHIR_DATA_DIR}", flush=True)
    try:
        return subprocess.call(command, env={**os.environ, "DEMO_FHIR_URL": url})
    except KeyboardInterrupt:
        return 130
    finally:
        if server is not None:
            server.stop()


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(
        prog="python -m ehr_sync.demo_fhir_server", description="The demo clinic's local FHIR server (make dev)."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run a command with the demo EHR running beside it: serve -- CMD ...")
    serve.add_argument("cmd", nargs=argparse.REMAINDER)
    change = commands.add_parser("change-patient", help="change a patient on the demo EHR (then press Sync now)")
    change.add_argument("patient_id", help="the EHR's id, e.g. demo-p-000001 (the patient's EHR id in LumaPay)")
    change.add_argument("--family", default="")
    change.add_argument("--given", default="")
    change.add_argument("--email", default="")
    change.add_argument("--phone", default="", help="a mobile number, e.g. +18045550199")
    book = commands.add_parser("book-appointment", help="book a visit for a patient on the demo EHR (then press Sync now)")
    book.add_argument("patient_id", help="the EHR's id, e.g. demo-p-000001 (the patient's EHR id in LumaPay)")
    book.add_argument("--hours-from-now", type=float, default=30, help="when the visit starts (default: 30 hours from now)")
    visit = commands.add_parser(
        "change-appointment", help="check a patient in, cancel or reschedule a visit on the demo EHR (then press Sync now)"
    )
    visit.add_argument("appointment_id", help="the EHR's id of the visit, as book-appointment printed it")
    visit.add_argument("--status", default="", choices=("", *DEMO_APPOINTMENT_STATUSES))
    visit.add_argument("--hours-from-now", type=float, default=None, help="reschedule: the new start")
    args = parser.parse_args(argv)
    if args.command == "serve":
        command = args.cmd[1:] if args.cmd[:1] == ["--"] else args.cmd
        if not command:
            parser.error("serve needs a command after --")
        return _serve_around(command)
    now = datetime.datetime.now(datetime.UTC)
    try:
        if args.command == "book-appointment":
            starts = (now + datetime.timedelta(hours=args.hours_from_now)).replace(second=0, microsecond=0)
            stored = demo_fhir_appointment_book(demo_fhir_url(), args.patient_id, starts_at=starts)
            print(f"Booked Appointment/{stored['id']} for Patient/{args.patient_id} at {stored['start']} on the demo EHR. "
                  "Press “Sync now” on the EHR connection to bring it in.")
            return 0
        if args.command == "change-appointment":
            if not args.status and args.hours_from_now is None:
                parser.error("say what to change: --status or --hours-from-now")
            starts = None if args.hours_from_now is None else now + datetime.timedelta(hours=args.hours_from_now)
            stored = demo_fhir_appointment_change(demo_fhir_url(), args.appointment_id, status=args.status, starts_at=starts)
            print(f"Changed Appointment/{stored['id']} on the demo EHR: {stored['status']}, {stored['start']} "
                  f"(version {stored.get('meta', {}).get('versionId', '?')}). Press “Sync now” on the EHR connection to bring it in.")
            return 0
    except DemoFhirServerError as error:
        print(error, file=sys.stderr)
        return 1
    if not (args.family or args.given or args.email or args.phone):
        parser.error("say what to change: --family, --given, --email or --phone")
    stored = demo_fhir_patient_change(
        demo_fhir_url(), args.patient_id, family=args.family, given=args.given, email=args.email, phone=args.phone
    )
    print(f"Changed Patient/{stored['id']} on the demo EHR (version {stored.get('meta', {}).get('versionId', '?')}). "
          "Press “Sync now” on the EHR connection to bring it in.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
