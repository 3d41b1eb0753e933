"""The pay page's limit on wrong dates of birth from one address holds across processes: three
gunicorn servers against one Redis share one count, so the refusal comes at the configured number
whichever process answers. Without Redis (development only: production refuses to start without
it, tests/lumapay/test_settings.py) each process counts on its own and lets three times as many
through; that case is here too, to show the test can tell the two apart.

Real processes (tests/processes.py), the test database and the local Redis; the requests go
round-robin to the three servers, so each process answers every third attempt.
"""

import datetime

import pytest
import requests

from ..processes import REDIS_URL, Stack
from ..waiting import wait_until
from .pay_support import dob_fields, pay_url, payment_request_make

pytestmark = pytest.mark.worker

LIMIT = 4
SERVERS = 3


@pytest.fixture
def stack_for(transactional_db, tmp_path):
    """stack_for(redis=True|False) → processes sharing Redis for their cache, or not; stopped
    (before pytest-django empties the tables) whatever the test did to them."""
    started = []

    def start(*, redis: bool) -> Stack:
        stack = Stack(tmp_path, ALLOWED_HOSTS="127.0.0.1")
        stack.env.update(
            REDIS_URL=REDIS_URL if redis else "",
            # Counters under the test's own prefix (its queue's name, which the stack's cleanup
            # removes from Redis), so other runs on the same Redis count apart.
            CACHE_KEY_PREFIX=stack.queue,
            PAY_PAGE_MAX_FAILED_DOB_ATTEMPTS_PER_ADDRESS=str(LIMIT),
            # Only the per-address limit is under test: the link itself never locks here.
            PAY_LINK_MAX_FAILED_DOB_ATTEMPTS="1000",
        )
        started.append(stack)
        return stack

    yield start
    for stack in started:
        stack.stop()


def _servers(stack: Stack) -> list[str]:
    """Three gunicorn servers of one worker each: three processes with their own memory."""
    servers = [stack.web(workers=1) for _ in range(SERVERS)]

    def answering() -> bool:
        for process, url in servers:
            if not process.running():
                pytest.fail(f"gunicorn exited:\n{process.log()}")
            try:
                requests.get(f"{url}/accounts/login/", timeout=5)
            except requests.RequestException:
                return False
        return True

    wait_until(answering, timeout_seconds=90, interval_seconds=0.2, describe=lambda: f"gunicorn answers:\n{stack.logs()}")
    return [url for _process, url in servers]


def _wrong_dates_of_birth(urls: list[str], path: str, wrong: datetime.date, attempts: int) -> list[int]:
    """Post a wrong date of birth ``attempts`` times, to the servers in turn, as a browser would
    (with the CSRF token the page set); the HTTP status of each answer."""
    sessions = []
    for url in urls:
        session = requests.Session()
        assert session.get(f"{url}{path}", timeout=30).status_code == 200
        sessions.append((session, url))
    statuses = []
    for attempt in range(attempts):
        session, url = sessions[attempt % len(sessions)]
        response = session.post(
            f"{url}{path}",
            data={**dob_fields(wrong), "csrfmiddlewaretoken": session.cookies["csrftoken"]},
            headers={"Referer": f"{url}{path}"},
            timeout=30,
        )
        statuses.append(response.status_code)
    return statuses


@pytest.mark.parametrize(
    "redis, first_refused",
    [(True, LIMIT + 1), (False, SERVERS * LIMIT + 1)],
    ids=["one count in Redis", "per-process memory (development only)"],
)
def test_the_limit_on_wrong_dates_of_birth_from_one_address_is_shared_by_every_process(
    stack_for, organization, patient, redis, first_refused
):
    # given three gunicorn processes, and a payment link
    urls = _servers(stack_for(redis=redis))
    payment_request = payment_request_make(organization=organization, patient=patient)
    wrong = patient.date_of_birth + datetime.timedelta(days=1)

    # when one address answers wrong, again and again, each process in turn
    statuses = _wrong_dates_of_birth(urls, pay_url("verify", payment_request), wrong, SERVERS * LIMIT + 2)

    # then the first refusal (429) comes at the configured number across the processes with Redis,
    # and only once every process has counted to it alone without
    assert statuses.index(429) + 1 == first_refused, statuses
    assert set(statuses[: first_refused - 1]) == {200}
    assert set(statuses[first_refused - 1 :]) == {429}
