"""Every response body matches the schema Twilio's OpenAPI document declares for it, and `/openapi.json`
describes exactly the routes this server has.

The conformance test drives a small contact center through the official SDK, calling every
operation at least once, records each response, and validates its JSON against the reference
document's schema for that path, method and status (Twilio's error body for a 4xx).
"""

from __future__ import annotations

import json
import re
from functools import cache
from urllib.parse import urlsplit

import jsonschema
import pytest

from callcenter.api.openapi import ERROR_SCHEMA, METHODS, path_shape, reference_document

from .test_statistics_api import JsonBodyHttpClient, QueueSids
from .test_tasks_api import Center, list_error, rest_error


class RecordingHttpClient(JsonBodyHttpClient):
    """Keeps (method, path, status, body) of every exchange, for validation after the scenario."""

    def __init__(self, app):
        super().__init__(app)
        self.exchanges: list[tuple[str, str, int, str]] = []

    def request(self, method, url, params=None, data=None, headers=None, auth=None, timeout=None,
                allow_redirects=False):
        response = super().request(method, url, params, data, headers, auth, timeout, allow_redirects)
        self.exchanges.append((method.lower(), urlsplit(url).path, response.status_code, response.text))
        return response


@pytest.fixture
def http(app):
    return RecordingHttpClient(app)


# -- the reference schemas, as plain JSON Schema -----------------------------------------------------

def _plain(schema, components):
    """An OpenAPI 3.0 schema as draft-4 JSON Schema: `$ref`s inlined, `nullable: true` allowing null."""
    if isinstance(schema, list):
        return [_plain(item, components) for item in schema]
    if not isinstance(schema, dict):
        return schema
    if "$ref" in schema:
        return _plain(components[schema["$ref"].rsplit("/", 1)[1]], components)
    plain = {key: _plain(value, components) for key, value in schema.items()
             if key not in ("nullable", "example", "examples")}
    if schema.get("nullable"):
        return {"anyOf": [{"type": "null"}, plain]}
    return plain


@cache
def _operations() -> list[tuple[re.Pattern, int, str, str]]:
    """(path regex, literal segment count, method, spec path) of every operation in the reference document."""
    found = []
    for path, item in reference_document()["paths"].items():
        pattern = re.compile("^" + re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(path)) + "$")
        literals = sum(1 for part in path.split("/") if part and not part.startswith("{"))
        found.extend((pattern, literals, method, path) for method in METHODS if method in item)
    return found


def operation_of(method: str, path: str) -> str:
    """The spec path serving `method path`; static segments win over variables, as in the router."""
    matches = [(literals, spec) for pattern, literals, verb, spec in _operations()
               if verb == method and pattern.match(path)]
    assert matches, f"no operation of the reference document serves {method.upper()} {path}"
    return max(matches)[1]


def response_schema(spec_path: str, method: str, status: int) -> dict | None:
    document = reference_document()
    if 400 <= status < 500:
        return ERROR_SCHEMA
    response = document["paths"][spec_path][method]["responses"].get(str(status))
    assert response is not None, f"{method.upper()} {spec_path} does not declare status {status}"
    content = response.get("content", {}).get("application/json")
    return _plain(content["schema"], document["components"]["schemas"]) if content else None


def violations(exchanges) -> list[str]:
    problems = []
    for method, path, status, text in exchanges:
        spec_path = operation_of(method, path)
        schema = response_schema(spec_path, method, status)
        if schema is None:
            if text:
                problems.append(f"{method.upper()} {path} -> {status}: a body where none is declared")
            continue
        body = json.loads(text)
        for error in jsonschema.Draft4Validator(schema).iter_errors(body):
            where = "/".join(str(part) for part in error.absolute_path)
            problems.append(f"{method.upper()} {path} -> {status}: at {where or '(top)'}: {error.message[:200]}")
        if 400 <= status < 500 and body.get("status") != status:
            problems.append(f"{method.upper()} {path} -> {status}: error body says status {body.get('status')}")
    return problems


def field_differences(exchanges) -> set[str]:
    """Declared fields a successful body lacks, and fields it has that its schema does not declare."""
    found: set[str] = set()
    for method, path, status, text in exchanges:
        if status < 400 and text:
            spec_path = operation_of(method, path)
            _compare_fields(response_schema(spec_path, method, status), json.loads(text),
                            f"{method.upper()} {spec_path}", found)
    return found


def _compare_fields(schema, body, where: str, found: set[str]) -> None:
    schema = schema["anyOf"][1] if isinstance(schema, dict) and "anyOf" in schema else schema
    if not isinstance(body, dict) or not isinstance(schema, dict) or "properties" not in schema:
        return  # free-form objects (`links`, the parts of a statistics resource) have no declared fields
    declared = schema["properties"]
    found.update(f"{where}: missing {name}" for name in declared.keys() - body.keys())
    found.update(f"{where}: undeclared {name}" for name in body.keys() - declared.keys())
    for name in body.keys() & declared.keys():
        field = declared[name]["anyOf"][1] if "anyOf" in declared[name] else declared[name]
        if field.get("type") == "array" and isinstance(body[name], list):
            for item in body[name]:
                _compare_fields(field.get("items", {}), item, f"{where}.{name}[]", found)
        else:
            _compare_fields(field, body[name], f"{where}.{name}", found)


# -- one call of every operation ---------------------------------------------------------------------

def exercise_every_operation(taskrouter, clock, router) -> None:
    """A contact center built and used through the SDK, touching each of the API's operations."""
    center = Center(taskrouter, clock, router)
    ws = center.ws
    spare = taskrouter.workspaces.create(friendly_name="Spare")
    taskrouter.workspaces.list()
    ws.fetch()
    ws.update(friendly_name="Support Center", event_callback_url="http://app.local/events")
    taskrouter.workspaces(spare.sid).delete()

    lunch = ws.activities.create(friendly_name="Lunch", available=False)
    ws.activities.list()
    ws.activities(lunch.sid).fetch()
    ws.activities(lunch.sid).update(friendly_name="Long lunch")
    ws.activities(lunch.sid).delete()

    email = ws.task_channels.create(friendly_name="Email", unique_name="email")
    ws.task_channels.list()
    ws.task_channels(email.sid).fetch()
    ws.task_channels(email.sid).update(friendly_name="E-mail")

    spare_queue = ws.task_queues.create(friendly_name="Spare", target_workers="1==1",
                                        reservation_activity_sid=center.activities["Busy"])
    ws.task_queues.list()
    ws.task_queues(spare_queue.sid).fetch()
    ws.task_queues(spare_queue.sid).update(friendly_name="Spare queue", task_order="LIFO")

    spare_workflow = ws.workflows.create(friendly_name="Spare", configuration=json.dumps(
        {"task_routing": {"filters": [], "default_filter": {"queue": spare_queue.sid}}}))
    ws.workflows.list()
    ws.workflows(spare_workflow.sid).fetch()
    ws.workflows(spare_workflow.sid).update(task_reservation_timeout=60)

    alice, bob = center.worker("alice", {"languages": ["en"]}), center.worker("bob")
    ws.workers.list()
    ws.workers(alice).fetch()
    ws.workers(alice).update(attributes=json.dumps({"languages": ["en", "es"]}))
    ws.workers(alice).worker_channels.list()
    ws.workers(alice).worker_channels("voice").fetch()
    ws.workers(alice).worker_channels("voice").update(capacity=2)

    clock.advance(5)
    first = center.task({"type": "support"}, priority=3)
    reservation = center.pending_reservation(first)
    ws.tasks.list()
    ws.tasks(first).fetch()
    ws.tasks(first).reservations.list()
    ws.tasks(first).reservations(reservation.sid).fetch()
    clock.advance(5)
    ws.tasks(first).reservations(reservation.sid).update(reservation_status="accepted")

    second = center.task()
    offer = center.pending_reservation(second)
    worker = ws.workers(offer.worker_sid)
    worker.reservations.list()
    worker.reservations(offer.sid).fetch()
    clock.advance(5)
    worker.reservations(offer.sid).update(reservation_status="rejected")
    ws.tasks(first).update(assignment_status="wrapping")
    ws.tasks(first).update(assignment_status="completed", reason="resolved")
    ws.tasks(second).delete()

    events = ws.events.list()
    ws.events(events[0].sid).fetch()

    ws.statistics().fetch(minutes=60)
    ws.real_time_statistics().fetch()
    ws.cumulative_statistics().fetch(split_by_wait_time="5,30")
    ws.task_queues.statistics.list(minutes=60)
    ws.task_queues.bulk_real_time_statistics.create(QueueSids([center.queue, spare_queue.sid]))
    queue = ws.task_queues(center.queue)
    queue.statistics().fetch(split_by_wait_time="10")
    queue.real_time_statistics().fetch()
    queue.cumulative_statistics().fetch(minutes=60)
    workflow = ws.workflows(center.workflow)
    workflow.statistics().fetch()
    workflow.real_time_statistics().fetch()
    workflow.cumulative_statistics().fetch(split_by_wait_time="5")
    ws.workers.statistics().fetch(task_queue_sid=center.queue)
    ws.workers.real_time_statistics().fetch()
    ws.workers.cumulative_statistics().fetch()
    ws.workers(alice).statistics().fetch(minutes=60)

    # Errors of each kind, whose bodies must have Twilio's error shape.
    rest_error(lambda: ws.activities.create(friendly_name="Available", available=True))  # 409
    rest_error(lambda: ws.workers("WK" + "0" * 32).fetch())  # 404
    rest_error(lambda: ws.cumulative_statistics().fetch(minutes=0))  # 400
    list_error(lambda: ws.tasks.list(assignment_status="lost"))  # 400 on a list

    ws.workers(bob).delete()
    ws.workflows(spare_workflow.sid).delete()
    ws.task_queues(spare_queue.sid).delete()
    ws.task_channels(email.sid).delete()


def test_every_response_matches_the_reference_schema(taskrouter, clock, router, http):
    exercise_every_operation(taskrouter, clock, router)
    assert violations(http.exchanges) == []


def test_every_response_has_exactly_the_fields_its_schema_declares(taskrouter, clock, router, http):
    exercise_every_operation(taskrouter, clock, router)
    assert field_differences(http.exchanges) == set()


def test_the_scenario_calls_every_operation_of_the_reference_document_successfully(taskrouter, clock, router, http):
    exercise_every_operation(taskrouter, clock, router)
    succeeded = {(method, operation_of(method, path)) for method, path, status, _ in http.exchanges if status < 400}
    every = {(method, spec) for _, _, method, spec in _operations()}
    assert every - succeeded == set()


def test_an_unauthenticated_request_gets_the_error_shape(app):
    response = app.test_client().get("/v1/Workspaces")
    assert response.status_code == 401
    assert jsonschema.Draft4Validator(ERROR_SCHEMA).is_valid(response.get_json())


# -- /openapi.json -----------------------------------------------------------------------------------

@pytest.fixture
def served(app):
    response = app.test_client().get("/openapi.json", base_url="https://callcenter.example:8443")
    assert response.status_code == 200
    return response.get_json()


def test_openapi_document_needs_no_credentials_and_names_this_server(served):
    assert served["openapi"].startswith("3.")
    assert served["servers"] == [{"url": "https://callcenter.example:8443", "description": "this server"}]
    assert all("servers" not in item for item in served["paths"].values())  # nothing points back to Twilio


def test_openapi_document_lists_exactly_the_flask_routes_under_v1(app, served):
    routes = {(path_shape(rule.rule), method.lower()) for rule in app.url_map.iter_rules()
              if rule.rule.startswith("/v1/") and ".not_allowed_" not in rule.endpoint  # 405 answers only
              for method in rule.methods if method.lower() in METHODS}
    documented = {(path_shape(path), method) for path, item in served["paths"].items()
                  for method in item if method in METHODS}
    assert routes - documented == set(), "routes missing from /openapi.json"
    assert documented - routes == set(), "/openapi.json lists operations this server does not have"


def test_openapi_document_declares_the_error_body_on_4xx(served):
    assert served["components"]["schemas"]["twilio.error"]["required"] == ["code", "message", "more_info", "status"]
    for path, item in served["paths"].items():
        for method in METHODS:
            if method in item:
                error = item[method]["responses"]["4XX"]["content"]["application/json"]["schema"]
                assert error == {"$ref": "#/components/schemas/twilio.error"}, f"{method} {path}"


def test_openapi_document_keeps_the_reference_schemas_of_each_operation(served):
    reference = reference_document()["paths"]["/v1/Workspaces/{WorkspaceSid}/Workers/{Sid}"]["get"]
    mine = served["paths"]["/v1/Workspaces/{WorkspaceSid}/Workers/{Sid}"]["get"]
    assert mine["parameters"] == reference["parameters"]
    assert mine["responses"]["200"] == reference["responses"]["200"]
    assert served["security"] == [{"accountSid_authToken": []}]

