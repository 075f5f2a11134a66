"""The supervisor dashboard: its numbers against a known day of calls, and the forms that change agents,
queues and the workflow."""

from __future__ import annotations

import json
import re

from werkzeug.exceptions import RequestEntityTooLarge

from callcenter.routing.models import TaskQueue, Worker, Workflow
from callcenter.voice.models import Call
from tests.voice.conftest import CALLER
from tests.voice.test_call_flow import answer


def queue_row(state: dict, name: str) -> dict:
    return next(row for row in state["queues"] if row["name"] == name)


def a_day_of_calls(scenario) -> None:
    """Support: answered after 10 s, answered after 24 s, abandoned, one still waiting (15 s).
    Sales: nobody available, so missed with a voicemail."""
    scenario.set_activity("Bob", "Available")
    first = scenario.dial(digits="2")
    scenario.deliver()
    scenario.advance(10)
    answer(scenario, scenario.reservations(first)[0].sid)
    scenario.post(f"/voice/agent/after?task={scenario.task(first).sid}", CallSid="CA" + "e" * 32)
    scenario.advance(30)  # wrap-up ends: Bob is available again

    second = scenario.dial(digits="2")
    scenario.deliver()
    scenario.advance(24)
    answer(scenario, scenario.reservations(second)[0].sid)  # Bob stays on this call

    sales = scenario.dial(digits="1")
    scenario.advance(120)  # the Sales target times out: voicemail
    scenario.post("/voice/voicemail/recorded", CallSid=sales, RecordingUrl="https://api.twilio.com/RE1",
                  RecordingSid="RE" + "1" * 32, RecordingDuration="12")
    scenario.post("/voice/voicemail/transcribed", CallSid=sales, TranscriptionText="Please call me back")

    gone = scenario.dial(digits="2")
    scenario.post("/voice/status", CallSid=gone, CallStatus="completed")  # hung up while waiting

    scenario.dial(digits="2")
    scenario.advance(15)


def test_dashboard_numbers_for_a_known_day(scenario, supervisor):
    a_day_of_calls(scenario)

    state = supervisor.json("/dashboard/state.json")

    support, sales = queue_row(state, "Support"), queue_row(state, "Sales")
    assert {key: support[key] for key in ("waiting", "longest_wait", "available_agents", "eligible_agents",
                                          "answered", "abandoned", "missed", "average_speed_of_answer",
                                          "service_level")} == {
        "waiting": 1, "longest_wait": 15, "available_agents": 0, "eligible_agents": 2,
        "answered": 2, "abandoned": 1, "missed": 0, "average_speed_of_answer": 17, "service_level": 33}
    assert (sales["answered"], sales["missed"], sales["service_level"], sales["waiting"]) == (0, 1, 0, 0)
    assert state["totals"] == {"waiting": 1, "answered": 2, "abandoned": 1, "missed": 1,
                               "average_speed_of_answer": 17, "service_level": 25}
    assert state["service_level_seconds"] == 20
    bob = next(agent for agent in state["agents"] if agent["name"] == "Bob")
    assert bob["activity"] == "On a call" and bob["task"]["status"] == "accepted" and bob["task"]["caller"] == CALLER
    [missed] = state["missed_calls"]
    assert (missed["from"], missed["queue"], missed["recording_url"], missed["recording_duration"],
            missed["transcription"]) == (CALLER, "Sales", "https://api.twilio.com/RE1", 12, "Please call me back")
    assert state["chart_svg"].startswith("<svg") and "<polyline" in state["chart_svg"]


def test_an_agent_being_rung_is_not_counted_free_for_the_queue(scenario, supervisor):
    """Counted by activity alone, an agent whose phone rang for one call was shown free for the next."""
    scenario.set_activity("Bob", "Available")
    assert queue_row(supervisor.json("/dashboard/state.json"), "Support")["available_agents"] == 1
    scenario.dial(digits="2")
    scenario.deliver()  # Bob's phone rings
    assert queue_row(supervisor.json("/dashboard/state.json"), "Support")["available_agents"] == 0


def test_service_level_threshold_comes_from_configuration(scenario, supervisor):
    supervisor.app.config["SERVICE_LEVEL_SECONDS"] = 30
    a_day_of_calls(scenario)

    support = queue_row(supervisor.json("/dashboard/state.json"), "Support")

    assert support["service_level"] == 67  # both answered calls are within 30 s; the abandoned one is not


def test_dashboard_page_renders_the_numbers_recordings_and_chart(scenario, supervisor):
    a_day_of_calls(scenario)

    page = supervisor.get("/dashboard").get_data(as_text=True)

    assert re.search(r'href="/dashboard/calls/CA\w+/voicemail"', page) and "Please call me back" in page
    assert "<svg" in page and "33%" in page


def test_the_waiting_calls_list_says_how_many_more_wait_than_it_shows(scenario, supervisor, monkeypatch):
    from callcenter.web import snapshots

    monkeypatch.setattr(snapshots, "WAITING_CALLS_SHOWN", 2)
    for _ in range(3):
        scenario.dial(digits="1")  # sales: nobody is available
    state = supervisor.json("/dashboard/state.json")
    assert (state["totals"]["waiting"], len(state["waiting_calls"])) == (3, 2)
    assert "… and 1 more (the 2 waiting longest are shown)" in supervisor.get("/dashboard").get_data(as_text=True)


def test_a_caller_sent_back_in_line_has_waited_since_they_first_joined_it(scenario, supervisor):
    """Their new task starts when they joined the line: the waiting list and the longest wait went back to 0."""
    caller = scenario.dial(digits="1")  # nobody takes sales calls yet
    scenario.advance(60)
    scenario.set_activity("Alice", "Available")
    scenario.deliver()
    [reservation] = scenario.reservations(caller)
    scenario.rest.fail("POST", f"Queues/{'QU' + '9' * 32}/Members/{caller}", 503, 20500, "Service unavailable")
    scenario.rest.fail("POST", f"Calls/{caller}", 503, 20500, "Service unavailable")
    answer(scenario, reservation.sid)  # she presses 1; the caller cannot be moved and goes back in line
    scenario.advance(5)

    state = supervisor.json("/dashboard/state.json")

    [waiting] = state["waiting_calls"]
    assert waiting["sid"] == scenario.call(caller).task_sid and waiting["waited"] == 65
    assert queue_row(state, "Sales")["longest_wait"] == 65


def test_a_voicemail_is_fetched_from_twilio_with_the_accounts_credentials_for_supervisors_only(
        scenario, supervisor, alice, rest):
    import base64

    import responses

    from tests.support import ACCOUNT_SID, AUTH_TOKEN, TWILIO_API

    caller = scenario.dial(digits="1")
    scenario.advance(120)  # nobody answered: a missed call
    recording = f"{TWILIO_API}/Recordings/RE{'5' * 32}"
    with scenario.router.transaction(scenario.center.workspace_sid) as tx:
        tx.session.get(Call, caller).recording_url = recording
    rest.mock.add(responses.GET, recording, body=b"RIFF-audio", content_type="audio/x-wav")

    page = supervisor.get("/dashboard").get_data(as_text=True)
    assert f'href="/dashboard/calls/{caller}/voicemail"' in page and recording not in page
    media = supervisor.get(f"/dashboard/calls/{caller}/voicemail")

    assert media.status_code == 200 and media.mimetype == "audio/x-wav" and media.data == b"RIFF-audio"
    [fetch] = [call.request for call in rest.mock.calls if call.request.url == recording]
    assert fetch.headers["Authorization"] == "Basic " + base64.b64encode(f"{ACCOUNT_SID}:{AUTH_TOKEN}".encode()).decode()
    assert alice.get(f"/dashboard/calls/{caller}/voicemail").status_code == 403
    assert supervisor.get(f"/dashboard/calls/CA{'0' * 32}/voicemail").status_code == 404


def test_a_recording_url_elsewhere_than_this_accounts_recordings_is_never_fetched(scenario, supervisor, rest):
    caller = scenario.dial(digits="1")
    scenario.advance(120)
    with scenario.router.transaction(scenario.center.workspace_sid) as tx:
        tx.session.get(Call, caller).recording_url = "https://internal.example/admin"

    answer = supervisor.get(f"/dashboard/calls/{caller}/voicemail")

    assert answer.status_code == 502 and "not a recording of account" in answer.get_data(as_text=True)
    assert not [call for call in rest.mock.calls if "internal.example" in call.request.url]


def test_recording_links_other_than_http_are_not_rendered(scenario, supervisor):
    caller = scenario.dial(digits="1")
    scenario.advance(120)
    with scenario.router.transaction(scenario.center.workspace_sid) as tx:
        tx.session.get(Call, caller).recording_url = "javascript:alert(1)"

    page = supervisor.get("/dashboard").get_data(as_text=True)

    assert "javascript:alert" not in page and "no voicemail" in page


# -- supervisor actions -------------------------------------------------------------------------------

def test_supervisor_changes_an_agents_activity(scenario, supervisor):
    bob = scenario.worker("Bob").sid

    response = supervisor.post(f"/dashboard/agents/{bob}/activity",
                               {"activity_sid": scenario.center.activity_sids["Available"]})

    assert response.status_code == 200
    assert response.get_json()["message"] == "Bob is now Available."
    assert scenario.activity_of("Bob") == "Available"
    unknown = supervisor.post(f"/dashboard/agents/{bob}/activity", {"activity_sid": "WA" + "0" * 32})
    assert unknown.status_code == 400 and scenario.activity_of("Bob") == "Available"
    missing = supervisor.post(f"/dashboard/agents/WK{'0' * 32}/activity",
                              {"activity_sid": scenario.center.activity_sids["Break"]})
    assert missing.status_code == 404 and missing.get_json()["code"] == 20404


def form_post(browser, path: str, data: dict):
    token = browser.page_token(path)
    return browser.client.post(path, data={**data, "csrf_token": token})


def test_a_queue_expression_that_matches_no_agent_is_saved_with_a_warning(scenario, supervisor):
    """A misspelt value is a valid expression: the queue's callers then wait for nobody until voicemail."""
    support = scenario.center.queue_sids["Support"]

    saved = form_post(supervisor, f"/dashboard/queues/{support}/edit", {"target_workers": "products HAS 'suport'"})

    assert saved.status_code == 302
    page = supervisor.get("/dashboard").get_data(as_text=True)
    assert "Saved queue Support: no agent matches it, so its callers will wait for nobody." in page


def test_queue_expression_is_checked_before_saving(scenario, supervisor):
    support = scenario.center.queue_sids["Support"]

    bad = form_post(supervisor, f"/dashboard/queues/{support}/edit", {"target_workers": "products HAS"})

    assert bad.status_code == 200
    assert "TargetWorkers: expected a value after &#39;HAS&#39; at column 13" in bad.get_data(as_text=True)
    with scenario.router.read() as session:
        assert session.get(TaskQueue, support).target_workers == "products HAS 'support'"

    good = form_post(supervisor, f"/dashboard/queues/{support}/edit", {"target_workers": "products HAS 'sales'"})

    assert good.status_code == 302
    assert "Saved queue Support: 2 agents match it." in supervisor.get("/dashboard").get_data(as_text=True)
    eligible = queue_row(supervisor.json("/dashboard/state.json"), "Support")["eligible_agents"]
    assert eligible == 2  # Alice and Carol sell; Bob does not
    with scenario.router.read() as session:
        assert session.get(TaskQueue, support).target_workers == "products HAS 'sales'"


def test_workflow_configuration_is_checked_before_saving(scenario, supervisor):
    with scenario.router.read() as session:
        before = session.get(Workflow, scenario.center.workflow_sid).configuration
    broken = json.loads(before)
    broken["task_routing"]["filters"][0]["expression"] = "selected_product =="

    bad = form_post(supervisor, "/dashboard/workflow/edit", {"configuration": json.dumps(broken)})
    not_json = form_post(supervisor, "/dashboard/workflow/edit", {"configuration": "{"})

    assert "expected a value" in bad.get_data(as_text=True)
    assert "not valid JSON" in not_json.get_data(as_text=True)
    with scenario.router.read() as session:
        assert session.get(Workflow, scenario.center.workflow_sid).configuration == before

    fixed = json.loads(before)
    fixed["task_routing"]["filters"][0]["expression"] = "selected_product == 'shop'"
    assert form_post(supervisor, "/dashboard/workflow/edit", {"configuration": json.dumps(fixed)}).status_code == 302
    with scenario.router.read() as session:
        saved = json.loads(session.get(Workflow, scenario.center.workflow_sid).configuration)
    assert saved["task_routing"]["filters"][0]["expression"] == "selected_product == 'shop'"


def test_agent_attributes_are_checked_and_change_queue_membership(scenario, supervisor):
    bob = scenario.worker("Bob").sid

    bad = form_post(supervisor, f"/dashboard/agents/{bob}/edit", {"attributes": "{not json"})
    array = form_post(supervisor, f"/dashboard/agents/{bob}/edit", {"attributes": "[1]"})

    assert "not valid JSON" in bad.get_data(as_text=True)
    assert "must be a JSON object" in array.get_data(as_text=True)
    for deep in ("[" * 100_000, '{"a": ' * 100_000):  # RecursionError in the parser: it was a 500
        refused = form_post(supervisor, f"/dashboard/agents/{bob}/edit", {"attributes": deep})
        assert refused.status_code == 200 and "nest too deeply" in refused.get_data(as_text=True)
        workflow = form_post(supervisor, "/dashboard/workflow/edit", {"configuration": deep})
        assert workflow.status_code == 200, workflow.status_code
    attributes = {"products": ["sales", "support"], "contact_uri": "+15005550002"}
    good = form_post(supervisor, f"/dashboard/agents/{bob}/edit", {"attributes": json.dumps(attributes)})
    assert good.status_code == 302
    assert "Saved Bob: in Sales, Support." in supervisor.get("/dashboard").get_data(as_text=True)
    with scenario.router.read() as session:
        assert json.loads(session.get(Worker, bob).attributes) == attributes
    assert queue_row(supervisor.json("/dashboard/state.json"), "Sales")["eligible_agents"] == 3


def test_a_form_saved_after_the_session_ended_leads_to_sign_in_and_back_to_the_form(scenario, supervisor):
    bob = scenario.worker("Bob").sid
    edit = f"/dashboard/agents/{bob}/edit"
    token = supervisor.page_token(edit)
    supervisor.client.post("/logout/everywhere", data={"csrf_token": token})

    saved = supervisor.client.post(edit, data={"attributes": "{}", "csrf_token": token},
                                   headers={"Referer": f"http://localhost{edit}"})

    assert saved.status_code == 302
    assert saved.headers["Location"].endswith(f"/login?next={edit}")


def test_a_plain_form_refused_shows_a_page_with_the_way_back_not_json(scenario, supervisor):
    bob = scenario.worker("Bob").sid
    edit = f"/dashboard/agents/{bob}/edit"
    refused = supervisor.client.post(edit, data={"attributes": "{}", "csrf_token": "stale"},
                                     headers={"Referer": f"http://localhost{edit}"})
    assert refused.status_code == 400 and refused.mimetype == "text/html"
    page = refused.get_data(as_text=True)
    assert "CSRF check failed" in page and "Nothing was changed" in page and f'href="{edit}"' in page
    fetched = supervisor.post(edit, {"attributes": "{}"}, token="stale")  # the page's own fetch: JSON, as before
    assert fetched.status_code == 400 and fetched.get_json()["code"] == 20001


def test_editing_forms_need_a_supervisor(scenario, alice):
    support = scenario.center.queue_sids["Support"]
    assert alice.get(f"/dashboard/queues/{support}/edit").status_code == 403
    assert alice.post(f"/dashboard/queues/{support}/edit", {"target_workers": "1 == 1"}).status_code == 403
    with scenario.router.read() as session:
        assert session.get(TaskQueue, support).target_workers == "products HAS 'support'"


def test_pages_say_when_the_contact_center_is_not_loaded(app, supervisor):
    app.config["CONTACT_CENTER_FILE"] = "/nonexistent/contact-center.toml"
    app.extensions.pop("contact_center", None)
    app.extensions.pop("contact_center_spec", None)
    reply = supervisor.get("/dashboard", headers={"Accept": "text/html"})
    assert reply.status_code == 503 and b"not loaded" in reply.data


def test_a_voicemail_reaches_open_dashboards_without_an_engine_event(app, scenario):
    from callcenter.web.live import hub_of

    subscription = hub_of(app).subscribe()
    try:
        caller = scenario.dial(digits="2")
        scenario.advance(120)  # no agent: voicemail
        while subscription.get(timeout=0) is not None:
            pass  # the engine's own notices
        scenario.post("/voice/voicemail/recorded", CallSid=caller, RecordingUrl="https://api.twilio.com/RE9",
                      RecordingSid="RE" + "9" * 32, RecordingDuration="4")
        notice = subscription.get(timeout=5)
        assert notice is not None and notice["events"][0][0] == "call.updated"
    finally:
        subscription.close()


def test_pages_cannot_be_framed_by_another_site(supervisor):
    reply = supervisor.get("/dashboard")
    assert reply.headers["X-Frame-Options"] == "DENY"
    assert "frame-ancestors 'none'" in reply.headers["Content-Security-Policy"]


def test_an_unexpected_error_is_a_page_for_the_browser_and_json_for_the_pages_fetches(scenario, supervisor,
                                                                                      monkeypatch, caplog):
    """The REST API's catch-all answered every path: a supervisor's browser showed {"code": 20500, ...}."""
    from callcenter.web import dashboard

    def broken(*args, **kwargs):
        raise RuntimeError("the database went away")

    monkeypatch.setattr(dashboard, "dashboard_snapshot", broken)

    page = supervisor.get("/dashboard")
    fetched = supervisor.client.get("/dashboard/state.json", headers={"Accept": "application/json"})

    assert page.status_code == 500 and page.mimetype == "text/html"
    assert "Something went wrong on our side" in page.get_data(as_text=True)
    assert fetched.status_code == 500 and fetched.get_json()["message"].startswith("Something went wrong")
    assert "the database went away" in caplog.text  # for whoever runs it, not for the page

    def refused(*args, **kwargs):
        raise RequestEntityTooLarge()

    monkeypatch.setattr(dashboard, "dashboard_snapshot", refused)
    too_big = supervisor.get("/dashboard")  # werkzeug's own refusals keep their status, as pages
    assert too_big.status_code == 413 and too_big.mimetype == "text/html"
