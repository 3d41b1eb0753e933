"""The Stripe side of the Stripe gateway's tests: a real localstripe server, Stripe objects built by
the project (tests/stripe_builders.py) for what localstripe lacks, webhook signing, and a recording
HTTP client. Nothing here reads a file from outside the checkout: a fresh clone runs it all.

- ``LocalStripeServer`` runs localstripe's aiohttp ``app`` on 127.0.0.1 (a free port), in a
  thread with its own event loop, once per test session. Its data is flushed between tests
  (``DELETE /_config/data``). Its store is kept in memory only: localstripe would otherwise pickle
  it to /tmp/localstripe.pickle after every write, a file other test runs on this machine share.
- localstripe has no Checkout, no Connect and no payouts or balance, so ``RecordingStripeClient``
  answers those routes itself (``FakeCheckout``, ``FakeConnect``, ``FakePayouts``) with objects
  from the builders (their shapes are
  checked against Stripe's published examples by test_stripe_builders_contract.py). A Checkout
  "payment" is made for real at localstripe: a PaymentIntent with the session's metadata,
  confirmed with a test card.
- ``RecordingStripeClient`` is installed as the gateway's HTTP client (``stripe_http`` fixture in
  tests/transactions/conftest.py). It records every request LumaPay sends to Stripe and checks
  the values each one carries (``RecordedRequest.values``: not Stripe's parameter names) for the
  PHI of every patient in the database at that moment (names and medical record number as whole
  words, date of birth, e-mail, phone). It also stands in for Connect's application fee, which
  localstripe lacks.
- ``signed_event`` signs an event body the way Stripe does: ``t=<unix time>,v1=<HMAC-SHA256 of
  "<t>.<body>" with the endpoint secret>``, so ``stripe.Webhook.construct_event`` runs for real.
"""

from __future__ import annotations

import asyncio
import copy
import datetime
import functools
import hashlib
import hmac
import json
import re
import secrets
import threading
import time
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, unquote_plus, urlencode, urlsplit

import requests
import stripe
from requests.structures import CaseInsensitiveDict

from .stripe_builders import (
    account_build,
    account_link_build,
    balance_build,
    balance_transaction_build,
    bank_account_build,
    charge_build,
    checkout_session_build,
    dispute_build,
    event_build,
    payout_build,
    refund_build,
)

SECRET_KEY = "sk_test_lumapay_localstripe"
PUBLISHABLE_KEY = "pk_test_lumapay_localstripe"
WEBHOOK_SECRET = "whsec_test_lumapay_endpoint"

# localstripe's test cards (it declines at charge time only with …0341).
CARD_SUCCEEDS = "4242424242424242"
CARD_DECLINED_AT_CHARGE = "4000000000000341"

def _token(length: int = 24) -> str:
    return secrets.token_hex(length // 2)


# -- the localstripe server -----------------------------------------------------------------------


class LocalStripeServer:
    """localstripe's aiohttp app on 127.0.0.1, in a background thread with its own event loop."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.url = ""
        self._runner = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        from aiohttp import web
        from localstripe.resources import store
        from localstripe.server import app

        store.dump_to_disk = lambda: None  # memory only (see the module docstring)
        ready = threading.Event()
        failure: list[BaseException] = []

        async def serve() -> None:
            self._runner = web.AppRunner(app, access_log=None)
            await self._runner.setup()
            site = web.TCPSite(self._runner, "127.0.0.1", 0)
            await site.start()
            host, port = self._runner.addresses[0][:2]
            self.url = f"http://{host}:{port}"

        def run() -> None:
            asyncio.set_event_loop(self.loop)
            try:
                self.loop.run_until_complete(serve())
            except BaseException as error:  # reported to the starting thread below
                failure.append(error)
                ready.set()
                return
            ready.set()
            self.loop.run_forever()

        self._thread = threading.Thread(target=run, name="localstripe", daemon=True)
        self._thread.start()
        if not ready.wait(timeout=30) or failure:
            raise RuntimeError(f"localstripe did not start: {failure[0] if failure else 'timed out'}")

    def stop(self) -> None:
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self.loop).result(timeout=10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        if self._thread is not None:
            self._thread.join(timeout=10)

    def flush(self) -> None:
        """Forget every object, webhook endpoint and delivery still waiting (localstripe sends
        each event about a second later: one from the previous test must not reach this one)."""
        from localstripe import webhooks

        webhooks._webhooks.clear()

        async def cancel_deliveries() -> None:
            for task in asyncio.all_tasks():
                if task is not asyncio.current_task() and "_send_webhook" in repr(task.get_coro()):
                    task.cancel()

        asyncio.run_coroutine_threadsafe(cancel_deliveries(), self.loop).result(timeout=10)
        requests.delete(f"{self.url}/_config/data", timeout=10).raise_for_status()

    def webhook_register(self, *, url: str, secret: str = WEBHOOK_SECRET) -> None:
        """localstripe signs and POSTs its events to ``url`` (about a second after each)."""
        requests.post(
            f"{self.url}/_config/webhooks/lumapay", data={"url": url, "secret": secret}, timeout=10
        ).raise_for_status()

    # Stripe's side of things a test acts out (the patient's card, Stripe's own state). These go
    # straight to localstripe, not through LumaPay's client: LumaPay does not send them.

    def call(self, method: str, path: str, **data) -> dict:
        response = requests.request(
            method,
            f"{self.url}{path}",
            data=_form(data) if method != "GET" else None,
            params=_form(data) if method == "GET" else None,
            headers={"Authorization": f"Bearer {SECRET_KEY}"},
            timeout=10,
        )
        body = response.json()
        if response.status_code >= 400:
            raise LocalStripeError(response.status_code, body)
        return body

    def payment_method(self, card_number: str = CARD_SUCCEEDS) -> str:
        return self.call(
            "POST",
            "/v1/payment_methods",
            type="card",
            card={"number": card_number, "exp_month": "12", "exp_year": "2034", "cvc": "123"},
        )["id"]

    def payment_intent_pay(
        self, *, amount_cents: int, currency: str = "usd", metadata: dict | None = None, card_number: str = CARD_SUCCEEDS
    ) -> dict:
        """A PaymentIntent paid (or declined) with a test card, as Checkout would make it."""
        payment_method = self.payment_method(card_number)
        intent = self.call(
            "POST",
            "/v1/payment_intents",
            amount=amount_cents,
            currency=currency,
            payment_method=payment_method,
            metadata=metadata or {},
        )
        try:
            self.call("POST", f"/v1/payment_intents/{intent['id']}/confirm")
        except LocalStripeError as error:
            if error.status != 402:
                raise
        return self.call("GET", f"/v1/payment_intents/{intent['id']}", expand=["latest_charge"])

    def refunds_of(self, payment_intent: str) -> list[dict]:
        return self.call("GET", "/v1/refunds", payment_intent=payment_intent, limit=100)["data"]


class LocalStripeError(Exception):
    def __init__(self, status: int, body: dict) -> None:
        super().__init__(f"localstripe answered {status}: {body}")
        self.status = status
        self.body = body


def _form(data: dict, prefix: str = "") -> list[tuple[str, str]]:
    """Stripe's form encoding: nested dicts as a[b]=, lists as a[0]=."""
    pairs: list[tuple[str, str]] = []
    for key, value in data.items():
        name = f"{prefix}[{key}]" if prefix else str(key)
        if isinstance(value, dict):
            pairs += _form(value, name)
        elif isinstance(value, (list, tuple)):
            pairs += _form({str(index): item for index, item in enumerate(value)}, name)
        elif value is not None:
            pairs.append((name, str(value).lower() if isinstance(value, bool) else str(value)))
    return pairs


def _unform(pairs: list[tuple[str, str]]) -> dict:
    """The reverse of ``_form``: a[b][0]=x → {"a": {"b": ["x"]}}."""
    root: dict = {}
    for name, value in pairs:
        parts = re.findall(r"[^\[\]]+", name)
        node = root
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value

    def listify(node):
        if isinstance(node, dict):
            node = {key: listify(value) for key, value in node.items()}
            if node and all(key.isdigit() for key in node):
                return [node[key] for key in sorted(node, key=int)]
        return node

    return listify(root)


# -- what localstripe lacks: Checkout and Connect, built by tests/stripe_builders.py ----------------


def _error_body(status: int, message: str, code: str = "") -> tuple[bytes, int]:
    body = {"error": {"type": "invalid_request_error", "message": message}}
    if code:
        body["error"]["code"] = code
    return json.dumps(body).encode(), status


class FakeCheckout:
    """Stripe Checkout, which localstripe does not have. Sessions come from
    ``checkout_session_build``; paying one makes a real PaymentIntent at localstripe."""

    def __init__(self, server: LocalStripeServer, application_fees: dict[str, int] | None = None) -> None:
        self.server = server
        self.application_fees = application_fees if application_fees is not None else {}
        self.sessions: dict[str, dict] = {}
        self.line_item_names: list[str] = []
        self._accounts: dict[str, str] = {}
        self._intent_metadata: dict[str, dict] = {}
        self._intent_fee: dict[str, str | None] = {}

    def create(self, params: dict, account: str) -> dict:
        if params["mode"] == "setup":
            amount, currency = None, params.get("currency")
        else:
            line = params["line_items"][0]
            amount = int(line["price_data"]["unit_amount"]) * int(line.get("quantity", 1))
            currency = line["price_data"]["currency"]
            self.line_item_names.append(line["price_data"]["product_data"]["name"])
        session_id = f"cs_test_{_token(40)}"
        session = checkout_session_build(
            id=session_id,
            mode=params["mode"],
            customer=params.get("customer"),
            setup_intent=None,
            amount_subtotal=amount,
            amount_total=amount,
            currency=currency,
            client_reference_id=params.get("client_reference_id"),
            metadata=params.get("metadata") or {},
            success_url=params["success_url"],
            cancel_url=params["cancel_url"],
            created=int(time.time()),
            expires_at=int(params.get("expires_at") or time.time() + 24 * 3600),
            status="open",
            payment_status="unpaid",
            payment_intent=None,
            customer_details=None,
            url=f"https://checkout.stripe.com/c/pay/{session_id}",
        )
        self.sessions[session_id] = session
        self._accounts[session_id] = account
        intent_data = params.get("setup_intent_data" if params["mode"] == "setup" else "payment_intent_data") or {}
        self._intent_metadata[session_id] = intent_data.get("metadata") or {}
        self._intent_fee[session_id] = intent_data.get("application_fee_amount")
        return session

    def get(self, session_id: str, account: str) -> dict | None:
        if self._accounts.get(session_id) != account:
            return None  # another account's session does not exist for this one, as at Stripe
        return self.sessions.get(session_id)

    def expire(self, session_id: str, account: str) -> tuple[dict | None, str]:
        session = self.get(session_id, account)
        if session is None:
            return None, "missing"
        if session["status"] != "open":
            return None, f"Only Checkout Sessions with a status in [\"open\"] can be expired. This Checkout Session has a status of \"{session['status']}\"."
        session["status"] = "expired"
        return session, ""

    def pay(self, session_id: str, *, card_number: str = CARD_SUCCEEDS) -> dict:
        """The patient pays on the hosted page: a real PaymentIntent at localstripe. A declined card
        leaves the session open (the patient may try another), as Checkout does."""
        session = self.sessions[session_id]
        assert session["status"] == "open", f"session is {session['status']}"
        intent = self.server.payment_intent_pay(
            amount_cents=session["amount_total"],
            currency=session["currency"],
            metadata=self._intent_metadata[session_id],
            card_number=card_number,
        )
        session["payment_intent"] = intent["id"]
        if self._intent_fee.get(session_id) is not None:
            self.application_fees[intent["id"]] = int(self._intent_fee[session_id])
        if intent["status"] == "succeeded":
            session.update(status="complete", payment_status="paid")
        return intent

    def save_card(self, session_id: str, *, card_number: str = CARD_SUCCEEDS) -> dict:
        """The patient enters a card on the setup-mode page: a real SetupIntent at localstripe,
        its card attached to the session's Customer. A card declined at attach time leaves the
        session open."""
        session = self.sessions[session_id]
        assert session["mode"] == "setup" and session["status"] == "open", session["status"]
        payment_method = self.server.payment_method(card_number)
        intent = self.server.call(
            "POST", "/v1/setup_intents", customer=session["customer"], usage="off_session", metadata=self._intent_metadata[session_id]
        )
        session["setup_intent"] = intent["id"]
        intent = self.server.call("POST", f"/v1/setup_intents/{intent['id']}/confirm", payment_method=payment_method)
        self.server.call("POST", f"/v1/payment_methods/{payment_method}/attach", customer=session["customer"])
        session.update(status="complete")
        return intent

    def account_of(self, session_id: str) -> str:
        return self._accounts[session_id]


class FakeConnect:
    """Stripe Connect accounts and account links, which localstripe does not have, from
    ``account_build`` and ``account_link_build``."""

    def __init__(self) -> None:
        self.accounts: dict[str, dict] = {}
        self.links: list[dict] = []
        self.persons: dict[str, dict[str, dict]] = {}  # by account, by person id

    def create(self, params: dict) -> dict:
        account_id = f"acct_{_token(16)}"
        business_profile = {**account_build()["business_profile"], **(params.get("business_profile") or {})}
        account = account_build(
            id=account_id,
            type=params.get("type", "standard"),
            email=params.get("email"),
            country=params.get("country", "US"),
            default_currency=params.get("default_currency", "usd"),
            business_type=params.get("business_type"),
            business_profile=business_profile,
            metadata=params.get("metadata") or {},
            created=int(time.time()),
        )
        # Stripe adds `company` to an account created with company details (Stripe's published
        # example, made without, has none).
        if params.get("company"):
            account["company"] = params["company"]
        self.accounts[account_id] = account
        return account

    def onboard(self, account_id: str, *, charges: bool = True, payouts: bool = True) -> dict:
        """The administrator finished Stripe's onboarding: Stripe's side of the account changes."""
        account = self.accounts[account_id]
        account.update(charges_enabled=charges, payouts_enabled=payouts, details_submitted=True)
        account["capabilities"].update(
            card_payments="active" if charges else "inactive", transfers="active" if payouts else "inactive"
        )
        account["requirements"].update(currently_due=[], past_due=[], eventually_due=[], disabled_reason=None)
        return account

    def update(self, account_id: str, params: dict) -> dict | None:
        """Account update: Stripe merges the nested hashes it is sent into the account."""
        account = self.accounts.get(account_id)
        if account is None:
            return None

        def merge(into: dict, new: dict) -> None:
            for key, value in new.items():
                if isinstance(value, dict) and isinstance(into.get(key), dict):
                    merge(into[key], value)
                else:
                    into[key] = value

        merge(account, params)
        return account

    def person_save(self, account_id: str, person_id: str, params: dict) -> tuple[dict | None, str]:
        """The Persons API (create without ``person_id``, update with it)."""
        if account_id not in self.accounts:
            return None, f"No such account: '{account_id}'"
        people = self.persons.setdefault(account_id, {})
        if person_id and person_id not in people:
            return None, f"No such person: '{person_id}'"
        person_id = person_id or f"person_{_token(14)}"
        person = people.setdefault(person_id, {"id": person_id, "object": "person", "account": account_id})
        for key, value in params.items():
            if isinstance(value, dict) and isinstance(person.get(key), dict):
                person[key].update(value)
            else:
                person[key] = value
        return person, ""

    def link(self, params: dict) -> tuple[dict | None, str]:
        if params.get("account") not in self.accounts:
            return None, f"No such account: '{params.get('account')}'"
        if not params.get("return_url") or not params.get("refresh_url"):
            return None, "return_url and refresh_url are required."
        link = account_link_build(url=f"https://connect.stripe.com/setup/s/{params['account']}/{_token(12)}")
        self.links.append({**params, "url": link["url"]})
        return link, ""


# -- the recording client -------------------------------------------------------------------------


@dataclass
class RecordedRequest:
    method: str
    url: str
    headers: dict
    body: str

    @property
    def path(self) -> str:
        return urlsplit(self.url).path

    @property
    def params(self) -> dict:
        if self.method.upper() == "GET":
            return _unform(parse_qsl(urlsplit(self.url).query))
        return _unform(parse_qsl(self.body or ""))

    @property
    def account(self) -> str | None:
        return self.headers.get("Stripe-Account")

    @property
    def idempotency_key(self) -> str | None:
        return self.headers.get("Idempotency-Key")

    def text(self) -> str:
        """Everything the request carries, decoded (to look for words that must never be there)."""
        return unquote_plus(" ".join([self.url, json.dumps(self.headers), self.body or ""]))

    def values(self) -> list[str]:
        """What the request carries that LumaPay chose, as opposed to Stripe's own vocabulary:
        every form or query value, the keys of metadata other than our own ``lumapay_…`` names
        (free text, ours to pick), in addresses
        (the request's, a success_url) the query's values and the path's segments other than
        lowercase route words (ids and tokens, where a value would go), and the headers LumaPay
        sets (the account, the Idempotency-Key's namespace and ids; the other headers are the
        library's: its version, the machine it runs on, the secret key). Form keys such as
        ``line_items[0][price_data]`` are Stripe's words, not data: a patient named Price is not in
        them; nor are the values of parameters that only take one of Stripe's own words
        (``payment_method_types[0]=card``)."""
        found: list[str] = []

        def walk(node, *, in_metadata: bool) -> None:
            if isinstance(node, dict):
                for key, value in node.items():
                    if in_metadata and not key.startswith("lumapay_"):
                        found.append(key)  # our own keys (lumapay_saved_card_id …) are words like Stripe's
                    elif key in _STRIPE_WORD_PARAMS:
                        continue
                    walk(value, in_metadata=key == "metadata")
            elif isinstance(node, list):
                for item in node:
                    walk(item, in_metadata=False)
            elif isinstance(node, str) and re.match(r"https?://", node):
                found.extend(_url_values(node))
            elif node not in (None, ""):
                found.append(str(node))

        walk(self.params, in_metadata=False)
        found += _url_values(self.url)
        if self.account:
            found.append(self.account)
        if self.idempotency_key:
            # lumapay:<namespace>:<row>:<pk>:<action>:<try>: the row and the action are our words,
            # like form keys; the namespace and the numbers are what it carries.
            ours = re.fullmatch(r"lumapay:([^:]+):[a-z_]+:(\d+):[a-z_]+:(\d+)", self.idempotency_key)
            found += list(ours.groups()) if ours else [self.idempotency_key]
        return found


@dataclass
class PhiLeak:
    request: RecordedRequest
    what: str


@dataclass
class _FailAfter:
    method: str
    path: str
    times: int


@dataclass
class _Answer:
    method: str
    path: str
    status: int
    body: dict


# Parameters whose value is one of Stripe's own words (an enum), or an object path: Stripe refuses
# anything else there, so they can carry no one's name.
_STRIPE_WORD_PARAMS = {
    "mode", "type", "business_type", "capture_method", "payment_method_types", "usage", "expand", "country",
    "currency", "default_currency", "status",
}


def _url_values(url: str) -> list[str]:
    """What an address carries: its query's values and the path's segments other than lowercase
    words (Stripe's resources, our own pages: /v1/payment_intents, /pay/<token>/card-saved/)."""
    parts = urlsplit(url)
    segments = [unquote_plus(segment) for segment in parts.path.split("/")]
    return [segment for segment in segments if segment and not re.fullmatch(r"[a-z_-]+", segment)] + [
        value for _name, value in parse_qsl(parts.query)
    ]


def _tokens(text: str) -> tuple[str, ...]:
    """Words and numbers, case-folded: "Quintanilla-Okafor" → ("quintanilla", "okafor")."""
    return tuple(re.findall(r"[^\W_]+", text.casefold()))


def _has_run(haystack: tuple[str, ...], needle: tuple[str, ...]) -> bool:
    size = len(needle)
    return size > 0 and any(haystack[start : start + size] == needle for start in range(len(haystack) - size + 1))


def phi_found_in(values: list[str]) -> list[str]:
    """What PHI of the patients now in the database the values carry (``RecordedRequest.values``):
    a name or medical record number as whole words in a value ("Price" in "Mr Price", never in
    "price_data" or "Prices"), the birth date in any usual format, the e-mail, the phone number
    however it is written."""
    from ehr_sync.models import Patient

    values = [value for value in values if value]
    tokenized = [_tokens(value) for value in values]
    words = set().union(*tokenized) if tokenized else set()
    found = []
    for row in Patient.objects.values_list(
        "first_name", "last_name", "external_ehr_id", "date_of_birth", "email", "mobile_phone"
    ):
        for what, needle, pattern in _phi_patterns(*row):
            if needle is not None:
                # Cheap first: every word of the name is somewhere in the request.
                if set(needle) <= words and any(_has_run(tokens, needle) for tokens in tokenized):
                    found.append(what)
            elif any(pattern.search(value) for value in values):
                found.append(what)
    return found


@functools.lru_cache(maxsize=4096)
def _phi_patterns(first_name, last_name, external_ehr_id, dob, email, mobile_phone):
    """(what, the words to find as a run of whole words, or None and a pattern to search values)."""
    found = []
    words = {"first name": first_name, "last name": last_name, "medical record number": external_ehr_id}
    for what, value in words.items():
        if value and _tokens(value):
            found.append((f"{what} {value!r}", _tokens(value), None))
    for text in {dob.isoformat(), dob.strftime("%m/%d/%Y"), f"{dob.month}/{dob.day}/{dob.year}", dob.strftime("%Y%m%d")}:
        found.append((f"date of birth {text}", None, re.compile(rf"(?<!\d){re.escape(text)}(?!\d)")))
    if email:
        found.append((f"e-mail {email!r}", None, re.compile(rf"(?<![\w.+-]){re.escape(email)}(?![\w-])", re.I)))
    digits = re.sub(r"\D", "", mobile_phone or "")[-10:]
    if len(digits) == 10:
        # 6175550123, 617-555-0123, (617) 555 0123, 617.555.0123 …
        separator = r"[\s().-]*"
        pattern = separator.join([re.escape(digits[:3]), re.escape(digits[3:6]), re.escape(digits[6:])])
        found.append((f"phone {mobile_phone!r}", None, re.compile(rf"(?<!\d)(?:\+?1{separator})?{pattern}(?!\d)")))
    return tuple(found)


class RecordingStripeClient(stripe.RequestsClient):
    """The Stripe library's own HTTP client, recording every request, answering the routes
    localstripe lacks, and (on request) failing after Stripe has acted, like a timeout."""

    name = "lumapay-test-recording"

    def __init__(self, server: LocalStripeServer) -> None:
        super().__init__(timeout=30)
        self.server = server
        # What localstripe lacks of Connect's direct charges: the platform's application fee, by
        # PaymentIntent (taken off the request before localstripe sees it, put back on its answers).
        self.application_fees: dict[str, int] = {}
        self.checkout = FakeCheckout(server, self.application_fees)
        self.connect = FakeConnect()
        self.payouts = FakePayouts(self.connect)
        self.recorded: list[RecordedRequest] = []
        self.leaks: list[PhiLeak] = []
        self._fail_after: list[_FailAfter] = []
        self._unreachable: list[_FailAfter] = []
        self._answers: list[_Answer] = []
        self._lock = threading.Lock()

    # -- what tests use --

    def fail_after(self, method: str, path: str, *, times: int = 1) -> None:
        """The next ``times`` requests to ``path`` reach Stripe, which acts on them, and then time
        out on our side (as ``requests`` reports a read timeout)."""
        self._fail_after.append(_FailAfter(method.upper(), path, times))

    def unreachable(self, method: str, path: str, *, times: int = 1) -> None:
        """The next ``times`` requests to ``path`` never reach Stripe (the connection is refused,
        as ``requests`` reports it), whether localstripe or a fake would have answered."""
        self._unreachable.append(_FailAfter(method.upper(), path, times))

    def answer_once(self, method: str, path: str, *, status: int, body: dict) -> None:
        """Stripe answers the next request to ``path`` with this (for answers localstripe never
        gives: a refusal of a disputed charge, a 500)."""
        self._answers.append(_Answer(method.upper(), path, status, body))

    def sent(self, method: str | None = None, path: str | None = None) -> list[RecordedRequest]:
        return [
            r
            for r in list(self.recorded)
            if (method is None or r.method.upper() == method.upper()) and (path is None or r.path.startswith(path))
        ]

    # -- the client --

    def request(self, method, url, headers, post_data=None):
        recorded = RecordedRequest(
            method=method.upper(),
            url=url,
            headers=dict(headers or {}),
            body=post_data.decode() if isinstance(post_data, bytes) else (post_data or ""),
        )
        self._check_for_phi(recorded)
        with self._lock:
            self.recorded.append(recorded)
        if self._consume(self._unreachable, recorded):
            import requests as requests_library

            self._handle_request_error(requests_library.exceptions.ConnectionError("Connection refused"))
        fake = self._fake(recorded)
        if fake is not None:
            body, status = fake
            return body, status, CaseInsensitiveDict({"Request-Id": f"req_fake_{_token(12)}"})
        fee, post_data = self._application_fee_taken_off(recorded, post_data)
        if fee is not None and fee > self._payment_intent_amount(recorded):
            body, status = _error_body(400, "The application fee cannot be more than the amount of the payment.")
            return body, status, CaseInsensitiveDict({"Request-Id": f"req_fake_{_token(12)}"})
        response = super().request(method, url, headers, post_data)
        response = self._application_fee_put_back(recorded, response, fee)
        if self._should_fail(recorded):
            import requests as requests_library

            self._handle_request_error(requests_library.exceptions.ReadTimeout("Read timed out. (read timeout=80)"))
        return response

    def _application_fee_taken_off(self, recorded: RecordedRequest, post_data):
        """localstripe refuses ``application_fee_amount`` (it has no Connect): take it off a
        PaymentIntent's create or capture, to be put back on what it answers."""
        if recorded.method != "POST" or not re.fullmatch(r"/v1/payment_intents(/[^/]+/capture)?", recorded.path):
            return None, post_data
        params = recorded.params
        if "application_fee_amount" not in params:
            return None, post_data
        fee = int(params.pop("application_fee_amount"))
        return fee, urlencode(_form(params)).encode()

    def _payment_intent_amount(self, recorded: RecordedRequest) -> int:
        if recorded.path == "/v1/payment_intents":
            return int(recorded.params.get("amount") or 0)
        intent_id = recorded.path.split("/")[3]
        return int(self.server.call("GET", f"/v1/payment_intents/{intent_id}")["amount"])

    def _application_fee_put_back(self, recorded: RecordedRequest, response, fee: int | None):
        content, status, response_headers = response
        if not recorded.path.startswith("/v1/payment_intents") or status >= 400:
            return response
        body = json.loads(content)
        if fee is not None and body.get("object") == "payment_intent":
            self.application_fees[body["id"]] = fee
        intents = body.get("data") if body.get("object") == "list" else [body]
        for intent in intents or []:
            if intent.get("object") != "payment_intent":
                continue
            intent_fee = self.application_fees.get(intent["id"])
            intent["application_fee_amount"] = intent_fee
            charge = intent.get("latest_charge")
            if isinstance(charge, dict):
                # Stripe's charge names the fee once it is taken: on capture.
                taken = intent_fee is not None and charge.get("captured")
                charge["application_fee_amount"] = intent_fee if taken else None
                charge["application_fee"] = f"fee_{charge['id'][3:]}" if taken else None
        return json.dumps(body).encode(), status, response_headers

    def _should_fail(self, recorded: RecordedRequest) -> bool:
        return self._consume(self._fail_after, recorded)

    def _consume(self, rules: list[_FailAfter], recorded: RecordedRequest) -> bool:
        with self._lock:
            for rule in rules:
                if rule.times > 0 and rule.method == recorded.method and recorded.path.startswith(rule.path):
                    rule.times -= 1
                    return True
        return False

    def _check_for_phi(self, recorded: RecordedRequest) -> None:
        for what in phi_found_in(recorded.values()):
            self.leaks.append(PhiLeak(recorded, what))

    def _fake(self, recorded: RecordedRequest) -> tuple[bytes, int] | None:
        path, method, account = recorded.path, recorded.method, recorded.account or ""
        with self._lock:
            for answer in self._answers:
                if answer.method == method and path.startswith(answer.path):
                    self._answers.remove(answer)
                    return json.dumps(answer.body).encode(), answer.status
        if path == "/v1/checkout/sessions" and method == "POST":
            return json.dumps(self.checkout.create(recorded.params, account)).encode(), 200
        match = re.fullmatch(r"/v1/checkout/sessions/([^/]+)(/expire)?", path)
        if match:
            session_id = match.group(1)
            if match.group(2) and method == "POST":
                session, problem = self.checkout.expire(session_id, account)
                if session is None:
                    if problem == "missing":
                        return _error_body(404, f"No such checkout.session: '{session_id}'", "resource_missing")
                    return _error_body(400, problem, "checkout_session_not_expirable")
                return json.dumps(session).encode(), 200
            session = self.checkout.get(session_id, account)
            if session is None:
                return _error_body(404, f"No such checkout.session: '{session_id}'", "resource_missing")
            return json.dumps(session).encode(), 200
        if path == "/v1/accounts" and method == "POST":
            return json.dumps(self.connect.create(recorded.params)).encode(), 200
        match = re.fullmatch(r"/v1/accounts/([^/]+)", path)
        if match and method == "GET":
            account_obj = self.connect.accounts.get(match.group(1))
            if account_obj is None:
                return _error_body(404, f"No such account: '{match.group(1)}'", "resource_missing")
            return json.dumps(account_obj).encode(), 200
        if match and method == "POST":
            updated = self.connect.update(match.group(1), recorded.params)
            if updated is None:
                return _error_body(404, f"No such account: '{match.group(1)}'", "resource_missing")
            return json.dumps(updated).encode(), 200
        match = re.fullmatch(r"/v1/accounts/([^/]+)/persons(?:/([^/]+))?", path)
        if match and method == "POST":
            person, problem = self.connect.person_save(match.group(1), match.group(2) or "", recorded.params)
            if person is None:
                return _error_body(404, problem, "resource_missing")
            return json.dumps(person).encode(), 200
        if match and method == "DELETE" and match.group(2):
            removed = self.connect.persons.get(match.group(1), {}).pop(match.group(2), None)
            if removed is None:
                return _error_body(404, f"No such person: '{match.group(2)}'", "resource_missing")
            return json.dumps({"id": match.group(2), "object": "person", "deleted": True}).encode(), 200
        if path == "/v1/account_links" and method == "POST":
            link, problem = self.connect.link(recorded.params)
            if link is None:
                return _error_body(400, problem)
            return json.dumps(link).encode(), 200
        if path == "/v1/events" and method == "GET" and not account:
            # localstripe ignores Stripe-Account: it would show the connected accounts' events to
            # the platform too. At Stripe, the platform's own list has none of them.
            return json.dumps({"object": "list", "data": [], "has_more": False, "url": "/v1/events"}).encode(), 200
        return self.payouts.route(recorded)


# -- payouts, their balance transactions and the balance: not in localstripe ----------------------


class FakePayouts:
    """Stripe's payouts, the balance transactions each carries, and the balance, on connected
    accounts (localstripe has none of them), from the builders. Served to LumaPay's client:

    - ``GET /v1/payouts`` (``created[gt|gte|lt|lte]``), ``GET /v1/payouts/{id}``
    - ``GET /v1/balance_transactions?payout=po_…``
    - ``GET /v1/balance``, and ``GET /v1/account`` (the connected account, from ``FakeConnect``)

    each on the account named by the Stripe-Account header only (another account's payout does
    not exist; no header at all is refused, as LumaPay never reads payouts as the platform), lists
    newest first with Stripe's cursor paging (``limit`` 1–100, default 10; ``starting_after``;
    ``has_more``), and ``expand[]=data.source`` / ``data.destination`` / ``destination`` honoured.

    A test sets up a payout with ``payout_add(account, lines)``, the lines made by the
    ``*_line`` functions below (their sources expanded: the fake keeps each source and names it
    by id unless asked to expand it)."""

    def __init__(self, connect: FakeConnect) -> None:
        self.connect = connect
        self.payouts: dict[str, dict] = {}  # id → payout (destination by id)
        self.bank_accounts: dict[str, dict] = {}  # id → bank account
        self.balances: dict[str, dict] = {}  # account → balance
        self.lines: dict[str, list[dict]] = {}  # payout id → its balance transactions, newest first
        self.sources: dict[str, dict] = {}  # a balance transaction's source by id, for expand
        self._accounts: dict[str, str] = {}  # payout id → its account

    # -- what tests use --

    def bank_account(self, account: str) -> dict:
        """The account's bank account (one, made on first use)."""
        for bank_account in self.bank_accounts.values():
            if bank_account.get("_account") == account:
                return {key: value for key, value in bank_account.items() if key != "_account"}
        bank_account = bank_account_build(id=f"ba_{_token(24)}")
        self.bank_accounts[bank_account["id"]] = {**bank_account, "_account": account}
        return bank_account

    def payout_add(self, account: str, lines: list[dict] = (), **fields) -> dict:
        """A payout on ``account`` carrying ``lines`` (balance transactions, oldest first; see the
        ``*_line`` functions), its amount their net added up unless ``amount`` is given, with its
        own withdrawal (type ``payout``) listed among them as Stripe lists it. ``fields`` are the
        payout's (``payout_build``): status, method, arrival_date, failure_code …"""
        lines = [copy.deepcopy(line) for line in lines]
        payout_id = fields.pop("id", None) or f"po_{_token(24)}"
        created = fields.pop("created", None) or int(time.time())
        amount = fields.pop("amount", None)
        if amount is None:
            amount = sum(line["net"] for line in lines)
        own = balance_transaction_build(
            amount=-amount, fee=0, fee_details=[], net=-amount, description="STRIPE PAYOUT",
            reporting_category="payout", source=payout_id, type="payout", created=created,
            available_on=created, status="available",
        )
        payout = payout_build(
            id=payout_id,
            amount=amount,
            created=created,
            destination=self.bank_account(account)["id"],
            balance_transaction=own["id"],
            **fields,
        )
        stored = []
        for line in lines:
            source = line.get("source")
            if isinstance(source, dict):
                self.sources[source["id"]] = source
                line["source"] = source["id"]
            stored.append(line)
        self.sources[payout_id] = payout
        self.payouts[payout_id] = payout
        self._accounts[payout_id] = account
        self.lines[payout_id] = [own, *reversed(stored)]
        return copy.deepcopy(payout)

    def payout_update(self, payout_id: str, **fields) -> dict:
        """Stripe's side of a payout changes (paid, failed with a code, a trace id known): the
        payout as an event would then carry it."""
        payout = self.payouts[payout_id]
        unknown = sorted(set(fields) - set(payout))
        if unknown:
            raise KeyError(f"a Stripe payout has no field {', '.join(unknown)}")
        payout.update(fields)
        return copy.deepcopy(payout)

    def balance_set(self, account: str, *, available: dict[str, int], pending: dict[str, int]) -> dict:
        """The account's balance: cents per currency (``{"usd": 12345}``), available and pending."""
        balance = balance_build(
            available=[{"amount": cents, "currency": currency, "source_types": {"card": cents}} for currency, cents in available.items()],
            pending=[{"amount": cents, "currency": currency, "source_types": {"card": cents}} for currency, cents in pending.items()],
            connect_reserved=[{"amount": 0, "currency": currency} for currency in available],
        )
        self.balances[account] = balance
        return copy.deepcopy(balance)

    def schedule_set(self, account: str, **schedule) -> dict:
        """The account's payout schedule (``settings.payouts.schedule``: interval, delay_days,
        weekly_anchor, monthly_anchor …)."""
        payouts = self.connect.accounts[account]["settings"]["payouts"]
        payouts["schedule"] = schedule
        return copy.deepcopy(payouts)

    # -- what the recording client routes here --

    def route(self, recorded: RecordedRequest) -> tuple[bytes, int] | None:
        path = recorded.path
        if recorded.method != "GET" or not (
            path in ("/v1/payouts", "/v1/balance", "/v1/balance_transactions", "/v1/account") or path.startswith("/v1/payouts/")
        ):
            return None
        account = recorded.account
        if not account:
            return _error_body(400, "FakePayouts: no Stripe-Account header (LumaPay reads payouts on the clinic's account only).")
        params = recorded.params
        expand = set(params.get("expand") or [])
        if path == "/v1/account":
            if account not in self.connect.accounts:
                return _error_body(403, f"The account '{account}' does not exist or you do not have access to it.")
            return json.dumps(self.connect.accounts[account]).encode(), 200
        if path == "/v1/balance":
            return json.dumps(self.balances.get(account) or balance_build()).encode(), 200
        if path == "/v1/balance_transactions":
            payout_id = params.get("payout") or ""
            if self._accounts.get(payout_id) != account:
                return _error_body(404, f"No such payout: '{payout_id}'", "resource_missing")
            items = [self._expanded(line, "source", "data.source" in expand) for line in self.lines[payout_id]]
            return self._page(items, params, f"/v1/balance_transactions")
        if path == "/v1/payouts":
            created = params.get("created") or {}
            items = [
                self._expanded(self._payout_out(payout), "destination", "data.destination" in expand)
                for payout_id, payout in sorted(self.payouts.items(), key=lambda item: -item[1]["created"])
                if self._accounts[payout_id] == account and _created_matches(payout["created"], created)
            ]
            return self._page(items, params, "/v1/payouts")
        payout_id = path.removeprefix("/v1/payouts/")
        if self._accounts.get(payout_id) != account:
            return _error_body(404, f"No such payout: '{payout_id}'", "resource_missing")
        payout = self._expanded(self._payout_out(self.payouts[payout_id]), "destination", "destination" in expand)
        return json.dumps(payout).encode(), 200

    def _payout_out(self, payout: dict) -> dict:
        return copy.deepcopy(payout)

    def _expanded(self, obj: dict, field_name: str, expand: bool) -> dict:
        obj = copy.deepcopy(obj)
        if expand and isinstance(obj.get(field_name), str):
            found = self.sources.get(obj[field_name]) or self.bank_accounts.get(obj[field_name])
            if found is not None:
                obj[field_name] = {key: value for key, value in copy.deepcopy(found).items() if key != "_account"}
        return obj

    @staticmethod
    def _page(items: list[dict], params: dict, url: str) -> tuple[bytes, int]:
        limit = int(params.get("limit") or 10)
        if not 1 <= limit <= 100:
            return _error_body(400, "Invalid integer: limit must be between 1 and 100.")
        start = 0
        if params.get("starting_after"):
            ids = [item["id"] for item in items]
            if params["starting_after"] not in ids:
                return _error_body(400, f"No such object: '{params['starting_after']}'", "resource_missing")
            start = ids.index(params["starting_after"]) + 1
        page = items[start : start + limit]
        body = {"object": "list", "data": page, "has_more": start + limit < len(items), "url": url}
        return json.dumps(body).encode(), 200


def _created_matches(created: int, condition) -> bool:
    if not isinstance(condition, dict):
        return not condition or created == int(condition)
    checks = {"gt": created.__gt__, "gte": created.__ge__, "lt": created.__lt__, "lte": created.__le__}
    return all(checks[name](int(value)) for name, value in condition.items() if name in checks)


# -- events, signed as Stripe signs them ----------------------------------------------------------


def stripe_signature(body: bytes, *, secret: str = WEBHOOK_SECRET, timestamp: int | None = None) -> str:
    timestamp = int(time.time()) if timestamp is None else timestamp
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"


def stripe_event(event_type: str, obj: dict, *, account: str | None, created: int | None = None, event_id: str | None = None) -> dict:
    """An event as Stripe delivers it (``event_build``)."""
    return event_build(
        id=event_id or f"evt_{_token(24)}",
        type=event_type,
        created=int(time.time()) if created is None else created,
        data={"object": copy.deepcopy(obj)},
        account=account,
    )


def event_body(event: dict) -> bytes:
    return json.dumps(event, separators=(",", ":")).encode()


def event_post(client, event: dict, *, secret: str = WEBHOOK_SECRET, timestamp: int | None = None, body: bytes | None = None):
    """POST an event to /webhooks/stripe/ with Stripe's signature over ``event`` (``body``, when
    given, is sent instead: an altered body)."""
    signed = event_body(event)
    return client.post(
        "/webhooks/stripe/",
        data=body if body is not None else signed,
        content_type="application/json",
        headers={"Stripe-Signature": stripe_signature(signed, secret=secret, timestamp=timestamp)},
    )


def event_receive(event: dict, *, secret: str = WEBHOOK_SECRET):
    """Hand a signed event to the receiving service directly (what the view does)."""
    from transactions.services.gateway_events import gateway_event_receive

    body = event_body(event)
    return gateway_event_receive(gateway="stripe", body=body, headers={"Stripe-Signature": stripe_signature(body, secret=secret)})


def dispute_object(
    *,
    charge: str,
    payment_intent: str,
    amount_cents: int,
    status: str,
    reason: str = "fraudulent",
    dispute_id: str | None = None,
    balance_transactions: list[dict] | None = None,
) -> dict:
    """A dispute (localstripe has none), from ``dispute_build``: evidence due in 14 days, with the
    balance transactions given (none: an inquiry, or a dispute that moved no money yet)."""
    return dispute_build(
        id=dispute_id or f"dp_{_token(24)}",
        charge=charge,
        payment_intent=payment_intent,
        amount=amount_cents,
        status=status,
        reason=reason,
        balance_transactions=list(balance_transactions or []),
    )


DISPUTE_FEE_CENTS = 1500  # Stripe's dispute fee in the US


def dispute_funds_withdrawn(*, dispute_id: str, charge: str, amount_cents: int, fee_cents: int = DISPUTE_FEE_CENTS) -> dict:
    """The balance transaction of a chargeback: the disputed amount taken from the clinic's balance,
    with Stripe's dispute fee (``balance_transaction_build``, as Stripe's examples show it)."""
    return balance_transaction_build(
        amount=-amount_cents,
        fee=fee_cents,
        fee_details=[{"amount": fee_cents, "application": None, "currency": "usd", "description": "Dispute fee", "type": "stripe_fee"}],
        description=f"Chargeback withdrawal for {charge}",
        reporting_category="dispute",
        source=dispute_id,
        type="adjustment",
    )


def dispute_funds_reinstated(*, dispute_id: str, charge: str, amount_cents: int, fee_returned_cents: int = 0) -> dict:
    """The balance transaction of a dispute won: the amount back, and the fee if Stripe returns it."""
    return balance_transaction_build(
        amount=amount_cents,
        fee=-fee_returned_cents,
        fee_details=(
            [{"amount": -fee_returned_cents, "application": None, "currency": "usd", "description": "Dispute fee refund", "type": "stripe_fee"}]
            if fee_returned_cents
            else []
        ),
        description=f"Chargeback reversal for {charge}",
        reporting_category="dispute_reversal",
        source=dispute_id,
        type="adjustment",
    )


# -- the lines of a payout (``FakePayouts.payout_add``) ------------------------------------------

# Balance transactions a payout carries (``FakePayouts.payout_add``), each with its source expanded
# (Stripe's objects from the builders) so the charge a refund or dispute concerns can be found.
STRIPE_FEE_PERCENT_BP = 290  # 2.9% + 30¢, Stripe's US card pricing
STRIPE_FEE_FIXED_CENTS = 30


def _line(**fields) -> dict:
    fields.setdefault("status", "available")
    fields.setdefault("available_on", int(time.time()) - 86400)
    return balance_transaction_build(**fields)


def charge_line(amount_cents: int, *, payment_intent: str | None = None, application_fee_cents: int = 0) -> dict:
    """A card payment: Stripe's fee (2.9% + 30¢) and the platform's application fee taken from it."""
    stripe_fee = (amount_cents * STRIPE_FEE_PERCENT_BP + 5000) // 10000 + STRIPE_FEE_FIXED_CENTS
    fee_details = [{"amount": stripe_fee, "application": None, "currency": "usd", "description": "Stripe processing fees", "type": "stripe_fee"}]
    if application_fee_cents:
        fee_details.append(
            {"amount": application_fee_cents, "application": f"ca_{_token(24)}", "currency": "usd", "description": "LumaPay application fee", "type": "application_fee"}
        )
    charge = charge_build(amount=amount_cents, payment_intent=payment_intent or f"pi_{_token(24)}")
    return _line(
        amount=amount_cents, fee=stripe_fee + application_fee_cents, fee_details=fee_details,
        reporting_category="charge", type="charge", source=charge,
    )


def refund_line(amount_cents: int, *, payment_intent: str | None = None) -> dict:
    """A refund of ``amount_cents`` (given positive) of the payment ``payment_intent``."""
    refund = refund_build(amount=amount_cents, payment_intent=payment_intent or f"pi_{_token(24)}")
    return _line(amount=-amount_cents, fee=0, fee_details=[], reporting_category="refund", type="refund", source=refund)


def refund_failure_line(amount_cents: int, *, payment_intent: str | None = None) -> dict:
    """A refund that failed at the card's bank: its amount back in the balance."""
    refund = refund_build(amount=amount_cents, payment_intent=payment_intent or f"pi_{_token(24)}", status="failed", failure_reason="expired_or_canceled_card")
    return _line(amount=amount_cents, fee=0, fee_details=[], reporting_category="refund_failure", type="refund_failure", source=refund)


def dispute_withdrawal_line(amount_cents: int, *, payment_intent: str | None = None, fee_cents: int = DISPUTE_FEE_CENTS) -> dict:
    """A chargeback: the disputed amount and Stripe's dispute fee taken (``dispute_funds_withdrawn``)."""
    dispute = dispute_object(charge=f"ch_{_token(24)}", payment_intent=payment_intent or f"pi_{_token(24)}", amount_cents=amount_cents, status="needs_response")
    line = dispute_funds_withdrawn(dispute_id=dispute["id"], charge=dispute["charge"], amount_cents=amount_cents, fee_cents=fee_cents)
    line.update(source=dispute, status="available")
    return line


def dispute_reinstatement_line(amount_cents: int, *, payment_intent: str | None = None, fee_returned_cents: int = 0) -> dict:
    """A dispute won: the amount back (``dispute_funds_reinstated``)."""
    dispute = dispute_object(charge=f"ch_{_token(24)}", payment_intent=payment_intent or f"pi_{_token(24)}", amount_cents=amount_cents, status="won")
    line = dispute_funds_reinstated(dispute_id=dispute["id"], charge=dispute["charge"], amount_cents=amount_cents, fee_returned_cents=fee_returned_cents)
    line.update(source=dispute, status="available")
    return line


def stripe_fee_line(amount_cents: int, *, description: str = "Radar for Fraud Teams") -> dict:
    """A fee Stripe charges the account apart from a payment (given positive; taken from the balance)."""
    return _line(amount=-amount_cents, fee=0, fee_details=[], reporting_category="fee", type="stripe_fee", source=None, description=description)


def application_fee_line(amount_cents: int) -> dict:
    """The platform's fee taken from the account as a balance transaction of its own."""
    return _line(amount=-amount_cents, fee=0, fee_details=[], reporting_category="fee", type="application_fee", source=f"fee_{_token(24)}", description="Application fee")


def adjustment_line(amount_cents: int, *, description: str = "Balance adjustment") -> dict:
    """An adjustment Stripe made to the balance (positive: credited; negative: debited)."""
    return _line(amount=amount_cents, fee=0, fee_details=[], reporting_category="other_adjustment", type="adjustment", source=None, description=description)


def payout_failure_line(amount_cents: int, *, failed_payout_id: str | None = None) -> dict:
    """An earlier payout that failed at the bank: its amount back in the balance, paid out again."""
    failed = payout_build(id=failed_payout_id or f"po_{_token(24)}", amount=amount_cents, status="failed", failure_code="account_closed", failure_message="The bank account has been closed.")
    return _line(amount=amount_cents, fee=0, fee_details=[], reporting_category="payout_reversal", type="payout_failure", source=failed, description="Payout failure")


def every_kind_lines(*, payment_intents: list[str] | None = None) -> list[dict]:
    """One line of every kind a payout carries, on these payments (made up when not given): a
    charge with an application fee, a refund, a failed refund, a dispute withdrawn and reinstated,
    a Stripe fee, an application fee, an adjustment each way and an earlier payout returned."""
    pi = list(payment_intents or []) or [f"pi_{_token(24)}" for _ in range(4)]
    pick = lambda index: pi[index % len(pi)]  # noqa: E731
    return [
        charge_line(12000, payment_intent=pick(0), application_fee_cents=120),
        charge_line(8000, payment_intent=pick(1)),
        refund_line(2500, payment_intent=pick(0)),
        refund_failure_line(1000, payment_intent=pick(2)),
        dispute_withdrawal_line(4000, payment_intent=pick(3)),
        dispute_reinstatement_line(4000, payment_intent=pick(3)),
        stripe_fee_line(500),
        application_fee_line(75),
        adjustment_line(-325),
        adjustment_line(1000, description="Fee credit"),
        payout_failure_line(6000),
    ]


@dataclass
class StripeWorld:
    """What a Stripe test has: the server, the recording client, and the fakes."""

    server: LocalStripeServer
    http: RecordingStripeClient
    extra: dict = field(default_factory=dict)

    @property
    def checkout(self) -> FakeCheckout:
        return self.http.checkout

    @property
    def connect(self) -> FakeConnect:
        return self.http.connect

    @property
    def payouts(self) -> FakePayouts:
        return self.http.payouts


# -- a clinic on Stripe, and its patients' payments -------------------------------------------------

# Patients as a clinic has them: names from many places, with hyphens, accents and several words,
# and some that are also words of Stripe's API (a Price, a Card, an Amount, a Customer, a Mode, a
# Line), which a check of words rather than values would find in every request LumaPay sends.
STRIPE_TEST_PATIENTS = [
    ("Leontyne", "Price", datetime.date(1957, 2, 10), "leontyne.price@mail.example", "+15035550147", "MRN-LP-3310"),
    ("Wilhelmina", "Card", datetime.date(1990, 11, 30), "w.card@mail.example", "+17185550162", "MRN-WC-0412"),
    ("Gideon", "Amount", datetime.date(1972, 5, 17), "gideon.amount@mail.example", "+14045550173", "MRN-GA-5521"),
    ("Rosalind", "Customer", datetime.date(1949, 8, 4), "rcustomer@mail.example", "+16025550188", "MRN-RC-7730"),
    ("Ingrid", "Mode", datetime.date(2001, 1, 22), "ingrid.mode@mail.example", "+12065550109", "MRN-IM-1180"),
    ("Line", "Haugen", datetime.date(1986, 6, 14), "line.haugen@mail.example", "+16175550131", "MRN-LH-9043"),
    ("Nguyễn Thị", "Hương", datetime.date(1979, 12, 2), "huong.nguyen@mail.example", "+17145550156", "MRN-NH-2267"),
    ("José María", "García Márquez", datetime.date(1965, 3, 28), "jm.garcia@mail.example", "+13055550120", "MRN-JG-6604"),
    ("Evangelina", "Quintanilla-Okafor", datetime.date(1961, 7, 23), "evangelina.q@mail.example", "+16175550123", "MRN-EQ-7781"),
    ("Seán", "O'Brien", datetime.date(1994, 9, 9), "sean.obrien@mail.example", "+15085550194", "MRN-SO-3358"),
]


def stripe_test_patient(organization, first_name: str):
    """One of ``STRIPE_TEST_PATIENTS`` in the organization (made once)."""
    from ehr_sync.models import Patient

    from .factories import PatientFactory

    (first, last, born, email, phone, mrn) = next(row for row in STRIPE_TEST_PATIENTS if row[0] == first_name)
    existing = Patient.objects.filter(organization=organization, external_ehr_id=mrn).first()
    return existing or PatientFactory(
        organization=organization, first_name=first, last_name=last, date_of_birth=born, email=email,
        mobile_phone=phone, external_ehr_id=mrn,
    )



def stripe_clinic(world: StripeWorld, organization, *, onboarded: bool = True):
    """The organization takes payments through Stripe, on a connected account that finished (or
    not) Stripe's onboarding."""
    account = world.connect.create({"type": "standard", "business_profile": {"name": organization.display_name}})
    if onboarded:
        world.connect.onboard(account["id"])
    organization.payment_gateway = "stripe"
    organization.stripe_account_id = account["id"]
    organization.stripe_charges_enabled = onboarded
    organization.stripe_payouts_enabled = onboarded
    organization.stripe_details_submitted = onboarded
    organization.save()
    return organization


def stripe_checkout_open(organization, *, amount_cents: int = 10000, patient=None, location=None):
    """A payment request whose patient pressed "Pay": a transaction with an open Stripe Checkout."""
    from transactions.models import Transaction
    from transactions.services.payments import checkout_begin

    from .transactions.pay_support import payment_request_make

    payment_request = payment_request_make(
        organization=organization, patient=patient, location=location, amount_cents=amount_cents
    )
    start = checkout_begin(payment_request=payment_request, ip_address="127.0.0.1")
    return Transaction.objects.get(gateway_checkout_id=start.checkout_id)


def stripe_checkout_paid(
    world: StripeWorld, organization, *, amount_cents: int = 10000, patient=None, card_number: str = CARD_SUCCEEDS, record: bool = True
):
    """The patient paid on Checkout (a real PaymentIntent at localstripe). With ``record``, the
    confirmation page has read the outcome; without, nothing has reached us yet."""
    from transactions.services.payments import checkout_outcome_record

    transaction = stripe_checkout_open(organization, amount_cents=amount_cents, patient=patient)
    world.checkout.pay(transaction.gateway_checkout_id, card_number=card_number)
    if record:
        checkout_outcome_record(transaction=transaction)
    transaction.refresh_from_db()
    return transaction


def session_completed_event(world: StripeWorld, transaction, **kwargs) -> dict:
    session = world.checkout.sessions[transaction.gateway_checkout_id]
    return stripe_event("checkout.session.completed", session, account=world.checkout.account_of(session["id"]), **kwargs)


def payment_intent_event(world: StripeWorld, transaction, event_type: str = "payment_intent.succeeded", **kwargs) -> dict:
    """The PaymentIntent event, with the object as localstripe has it now (its charge collapsed to
    an id, as Stripe sends it)."""
    session = world.checkout.sessions[transaction.gateway_checkout_id]
    intent = world.server.call("GET", f"/v1/payment_intents/{session['payment_intent']}")
    if isinstance(intent.get("latest_charge"), dict):
        intent["latest_charge"] = intent["latest_charge"]["id"]
    intent.pop("charges", None)
    return stripe_event(event_type, intent, account=world.checkout.account_of(session["id"]), **kwargs)
