"""Schemathesis fuzzes every operation of `/openapi.json` in-process: no 5xx, and every 4xx in Twilio's shape.

A small contact center is built first, and generated requests use its real sids part of the time
(consistent ones: a reservation with its own task), so they reach the code behind the 404s.
DELETEs get their own spare resources and run last, so the rest is fuzzed against a live
workspace. Generated cases are positive (valid per the schema) and negative (invalid on purpose).
"""

from __future__ import annotations

import base64
import json
import os
import re
import time
from dataclasses import dataclass, field

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from sqlalchemy import select
from twilio.rest import Client

from app import create_app
from callcenter.routing import FakeClock
from callcenter.routing.models import Reservation, WorkerChannel

from .conftest import ACCOUNT_SID, AUTH_TOKEN, FlaskAppHttpClient
from .test_tasks_api import Center, list_error, rest_error

# Per operation, in every run of the suite: about 900 requests over the 63 operations. CALLCENTER_FUZZ_SCALE=3
# (or more) fuzzes deeper, e.g. before a release.
SCALE = max(1, int(os.environ.get("CALLCENTER_FUZZ_SCALE", "1")))
POSITIVE_EXAMPLES = 8 * SCALE
NEGATIVE_EXAMPLES = 6 * SCALE
MIN_REQUESTS = 800 * SCALE
AUTH = {"Authorization": "Basic " + base64.b64encode(f"{ACCOUNT_SID}:{AUTH_TOKEN}".encode()).decode()}
SCHEMA_CHECKS = [status_code_conformance, content_type_conformance, response_schema_conformance]

# The sid prefix a path parameter takes: by its name, or for `Sid` by the collection it follows.
PREFIX_OF_PARAMETER = {"WorkspaceSid": "WS", "TaskQueueSid": "WQ", "TaskSid": "WT", "WorkerSid": "WK",
                       "WorkflowSid": "WW"}
PREFIX_OF_COLLECTION = {"Workspaces": "WS", "Activities": "WA", "TaskChannels": "TC", "TaskQueues": "WQ",
                        "Workers": "WK", "Workflows": "WW", "Tasks": "WT", "Reservations": "WR", "Events": "EV",
                        "Channels": "WC"}


@dataclass
class Findings:
    requests: int = 0
    by_status: dict[int, int] = field(default_factory=dict)
    real_path_hits: int = 0
    problems: dict[str, str] = field(default_factory=dict)

    def add(self, key: str, detail: str) -> None:
        self.problems.setdefault(key, detail)


# -- the contact center the fuzzer aims at -----------------------------------------------------------

@pytest.fixture
def fuzz_app(database_url):
    clock = FakeClock()
    app = create_app({"TESTING": True, "DATABASE_URL": database_url, "RUN_SWEEPER": False, "AUTO_MIGRATE": True,
                      "TWILIO_ACCOUNT_SID": ACCOUNT_SID, "TWILIO_AUTH_TOKEN": AUTH_TOKEN})
    app.extensions["router"].clock = clock
    yield app, clock
    app.extensions["router"].dispose()


def build_center(app, clock) -> tuple[dict[str, list[str]], dict[str, list[str]]]:
    """Sids by prefix of the live contact center, and of spare resources kept for the DELETEs."""
    router = app.extensions["router"]
    taskrouter = Client(ACCOUNT_SID, AUTH_TOKEN, http_client=FlaskAppHttpClient(app), environment={"_": "_"}).taskrouter.v1
    center = Center(taskrouter, clock, router)
    ws = center.ws
    workers = [center.worker(name, {"skill": name}) for name in ("alice", "bob", "carol")]
    sales = center.make_queue("Sales", target_workers="skill == 'bob'")
    tasks = [center.task({"n": n}, priority=n) for n in range(4)]
    clock.advance(3)
    center.accept(tasks[0])
    email = ws.task_channels.create(friendly_name="Email", unique_name="email").sid
    live = {
        "WS": [center.ws_sid], "WA": list(center.activities.values()), "WQ": [center.queue, sales],
        "WW": [center.workflow], "WK": workers, "WT": tasks, "TC": [email, "voice", "default"],
        "EV": [event.sid for event in ws.events.list(limit=5)],
    }
    spare = {
        "WS": [taskrouter.workspaces.create(friendly_name=f"Spare {n}").sid for n in range(2)],
        "WA": [ws.activities.create(friendly_name=f"Spare {n}", available=False).sid for n in range(2)],
        "WQ": [center.make_queue(f"Spare {n}") for n in range(2)],
        "WW": [center.make_workflow(default=sales, name=f"Spare {n}") for n in range(2)],
        "WK": [center.worker(f"spare {n}", available=False) for n in range(2)],
        "WT": [center.task({"spare": n}) for n in range(2)],
        "TC": [ws.task_channels.create(friendly_name=f"Spare {n}", unique_name=f"spare{n}").sid for n in range(2)],
    }
    return live, spare


def real_bindings(app, path: str, pool: dict[str, list[str]]) -> list[dict[str, str]]:
    """Consistent values of the path's parameters from `pool` (a reservation with its own task, ...)."""
    names = re.findall(r"\{(\w+)\}", path)
    if not names:
        return [{}]
    segments = path.split("/")
    prefixes = {}
    for name in names:
        if name != "Sid":
            prefixes[name] = PREFIX_OF_PARAMETER[name]
        else:
            prefixes[name] = PREFIX_OF_COLLECTION[segments[segments.index("{Sid}") - 1]]
    workspace = pool["WS"][0]
    with app.extensions["router"].read() as session:
        if prefixes.get("Sid") == "WR":
            owner = "TaskSid" if "TaskSid" in prefixes else "WorkerSid"
            rows = session.scalars(select(Reservation).where(Reservation.task_sid.in_(pool.get("WT", []))))
            return [{"WorkspaceSid": row.workspace_sid, "Sid": row.sid,
                     owner: row.task_sid if owner == "TaskSid" else row.worker_sid} for row in rows]
        if prefixes.get("Sid") == "WC":
            rows = session.scalars(select(WorkerChannel).where(WorkerChannel.worker_sid.in_(pool.get("WK", []))))
            return [{"WorkspaceSid": row.workspace_sid, "WorkerSid": row.worker_sid, "Sid": row.sid} for row in rows]
    if prefixes == {"Sid": "WS"}:
        return [{"Sid": sid} for sid in pool.get("WS", [])]
    bindings = []
    for name, prefix in prefixes.items():
        if name == "WorkspaceSid":
            continue
        bindings.extend({"WorkspaceSid": workspace, name: sid} for sid in pool.get(prefix, []))
    return bindings or [{"WorkspaceSid": workspace}]


# -- what every response must satisfy ----------------------------------------------------------------

def check_response(case, response, findings: Findings) -> None:
    label = f"{case.operation.method.upper()} {case.operation.path}"
    status = response.status_code
    findings.requests += 1
    findings.by_status[status] = findings.by_status.get(status, 0) + 1
    if status >= 500:
        findings.add(f"{label} -> {status}", f"{response.text[:300]}\n  {case.as_curl_command()[:600]}")
        return
    if 400 <= status < 500:
        try:
            body = json.loads(response.text)
        except ValueError:
            body = None
        if not (isinstance(body, dict) and {"code", "message", "more_info", "status"} <= body.keys()
                and body["status"] == status and isinstance(body["code"], int)):
            findings.add(f"{label} -> {status}: not Twilio's error shape", response.text[:300])
    try:
        case.validate_response(response, checks=SCHEMA_CHECKS)
    except AssertionError as failure:  # schemathesis' failures are AssertionErrors
        findings.add(f"{label} -> {status}: {str(failure).splitlines()[0][:160]}", str(failure)[:600])


def fuzz_operation(operation, bindings: list[dict[str, str]], workspace: str, findings: Findings) -> None:
    """Positive then negative cases; most get real path sids, some only a real workspace, the rest generated ones."""
    for mode, examples in ((GenerationMode.POSITIVE, POSITIVE_EXAMPLES), (GenerationMode.NEGATIVE, NEGATIVE_EXAMPLES)):
        @settings(max_examples=examples, deadline=None, database=None, phases=[Phase.explicit, Phase.generate],
                  suppress_health_check=list(HealthCheck))
        @given(case=operation.as_strategy(generation_mode=mode), binding=st.sampled_from(bindings),
               dice=st.integers(0, 19))
        def run(case, binding, dice):
            parameters = dict(case.path_parameters or {})
            if dice < 14:
                parameters.update(binding)
            elif dice < 17 and "WorkspaceSid" in parameters:
                parameters["WorkspaceSid"] = workspace
            if parameters != (case.path_parameters or {}):
                findings.real_path_hits += 1
                case.path_parameters = parameters
            # A negative case may drop the credentials; put them back so it reaches the code behind the 401.
            case.headers = {**(case.headers or {}), **AUTH}
            try:
                response = case.call()
            except Exception as error:  # the WSGI transport re-raises what the app raised (a 500)
                findings.requests += 1
                findings.add(f"{operation.method.upper()} {operation.path} raised {type(error).__name__}",
                             f"{str(error)[:300]}\n  {case.as_curl_command()[:600]}")
                return
            check_response(case, response, findings)

        run()


@pytest.mark.slow
def test_fuzzed_requests_never_get_a_5xx_and_every_4xx_is_twilios_error(fuzz_app):
    app, clock = fuzz_app
    started = time.monotonic()
    live, spare = build_center(app, clock)
    schema = schemathesis.openapi.from_wsgi("/openapi.json", app)
    operations = [result.ok() for result in schema.get_all_operations()]
    findings = Findings()
    # Everything but DELETE first, on the live center; then the DELETEs, on the spares.
    for operation in sorted(operations, key=lambda op: op.method.lower() == "delete"):
        if operation.method.lower() != "delete":
            pool = live
        elif operation.path == "/v1/Workspaces/{Sid}":
            pool = spare  # only spare workspaces are ever deleted
        else:
            pool = {**spare, "WS": live["WS"]}  # the spare resources live in the live workspace
        fuzz_operation(operation, real_bindings(app, operation.path, pool), live["WS"][0], findings)
    elapsed = time.monotonic() - started
    print(f"\nfuzzed {findings.requests} requests over {len(operations)} operations in {elapsed:.1f} s; "
          f"{findings.real_path_hits} with real path sids; statuses {dict(sorted(findings.by_status.items()))}")
    assert findings.requests >= MIN_REQUESTS
    assert findings.problems == {}, "\n".join(f"{key}\n  {detail}" for key, detail in findings.problems.items())


# -- inputs that once got a 500, pinned as plain tests -------------------------------------------------
# Found by the fuzzer (NUL characters on PostgreSQL, dates near year 1) and by probing what it cannot
# forge (page tokens, JSON nested thousands deep, Unicode digits).

def test_a_nul_character_in_a_parameter_is_refused_before_the_database(taskrouter):
    ws = taskrouter.workspaces.create(friendly_name="Nul").sid
    attempt = lambda: taskrouter.workspaces(ws).activities.create(friendly_name="Lun\x00ch", available=False)  # noqa: E731
    assert rest_error(attempt)[:2] == (400, 20001)
    assert list_error(lambda: taskrouter.workspaces(ws).workers.list(friendly_name="a\x00b"))[:2] == (400, 20001)
    assert "Lunch" not in {a.friendly_name for a in taskrouter.workspaces(ws).activities.list()}


def test_a_nul_character_in_a_path_is_not_found(app):
    response = app.test_client().get("/v1/Workspaces/WS%00/Activities", headers=AUTH)
    assert (response.status_code, response.get_json()["code"]) == (404, 20404)


def test_a_nul_character_in_the_credentials_is_not_an_account(app):
    credentials = base64.b64encode(f"{ACCOUNT_SID}\x00:{AUTH_TOKEN}".encode()).decode()
    response = app.test_client().get("/v1/Workspaces", headers={"Authorization": f"Basic {credentials}"})
    assert (response.status_code, response.get_json()["code"]) == (401, 20003)


@pytest.mark.parametrize("dates", [{"end_date": "0001-01-01T00:01:00Z"}, {"start_date": "0001-01-01T00:00:00+01:00"},
                                   {"end_date": "9999-12-31T23:59:59-01:00"}])
def test_statistics_dates_at_the_ends_of_the_calendar_are_400(taskrouter, dates):
    ws = taskrouter.workspaces.create(friendly_name="Calendar").sid
    assert rest_error(lambda: taskrouter.workspaces(ws).cumulative_statistics().fetch(**dates))[:2] == (400, 20001)


def forged_page_token(values) -> str:
    return "PT" + base64.urlsafe_b64encode(json.dumps(values).encode()).decode().rstrip("=")


@pytest.mark.parametrize("values", [["2026-01-05T09:00:00", None], [None, "WA" + "0" * 32], ["2026-01-05T09:00:00", 5],
                                    ["2026-01-05T09:00:00", {"sid": 1}], ["2026-01-05T09:00:00", "WA\x00"],
                                    ["2026-01-05T09:00:00+02:00", "WA" + "0" * 32]])
def test_a_forged_page_token_is_a_400(taskrouter, values):
    ws = taskrouter.workspaces.create(friendly_name="Tokens").sid
    page = lambda: taskrouter.workspaces(ws).activities.page(page_token=forged_page_token(values))  # noqa: E731
    assert list_error(page)[:2] == (400, 20001)


def test_a_page_number_in_unicode_digits_is_ignored_like_any_other_non_number(app, taskrouter):
    ws = taskrouter.workspaces.create(friendly_name="Pages").sid
    response = app.test_client().get(f"/v1/Workspaces/{ws}/Activities", query_string={"Page": "²"}, headers=AUTH)
    assert (response.status_code, response.get_json()["meta"]["page"]) == (200, 0)


DEEP = "[" * 2000 + "]" * 2000  # under the 4,096 character limit, deeper than Python's JSON parser goes


def test_attributes_nested_thousands_deep_are_a_400(taskrouter):
    ws = taskrouter.workspaces.create(friendly_name="Deep").sid
    attributes = '{"a": ' + DEEP + "}"
    attempt = lambda: taskrouter.workspaces(ws).workers.create(friendly_name="deep", attributes=attributes)  # noqa: E731
    assert rest_error(attempt)[:2] == (400, 20001)
    assert taskrouter.workspaces(ws).workers.list() == []


def test_a_workflow_configuration_nested_thousands_deep_is_a_400(taskrouter):
    ws = taskrouter.workspaces.create(friendly_name="Deep").sid
    attempt = lambda: taskrouter.workspaces(ws).workflows.create(friendly_name="deep", configuration=DEEP)  # noqa: E731
    assert rest_error(attempt)[:2] == (400, 20001)


def test_evaluate_worker_attributes_nested_thousands_deep_is_a_400(taskrouter):
    ws = taskrouter.workspaces.create(friendly_name="Deep").sid
    attempt = lambda: taskrouter.workspaces(ws).task_queues.list(evaluate_worker_attributes='{"a": ' + DEEP + "}")  # noqa: E731
    assert list_error(attempt)[:2] == (400, 20001)


def test_a_bulk_statistics_body_nested_thousands_deep_is_a_400(app, taskrouter):
    ws = taskrouter.workspaces.create(friendly_name="Deep").sid
    response = app.test_client().post(f"/v1/Workspaces/{ws}/TaskQueues/RealTimeStatistics", data="[" * 5000,
                                      headers={**AUTH, "Content-Type": "application/json"})
    assert (response.status_code, response.get_json()["code"]) == (400, 20001)
