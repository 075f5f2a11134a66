"""The agent console: activity, the pending offer with accept / reject, the call, wrap-up and complete;
and an agent never reaches another agent's work."""

from __future__ import annotations

from tests.support import PUBLIC_BASE_URL
from tests.voice.conftest import CALLER

QUEUE_SID = "QU" + "9" * 32


def activity_sid(scenario, name: str) -> str:
    return scenario.center.activity_sids[name]


def offered_call(scenario, alice, digits: str = "1") -> tuple[str, dict]:
    """Alice goes available from the console and a sales caller dials in: the console shows the offer."""
    alice.post("/agent/activity", {"activity_sid": activity_sid(scenario, "Available")})
    caller = scenario.dial(digits=digits)
    scenario.deliver()
    return caller, alice.json("/agent/state.json")


def test_agent_goes_available_and_sees_the_new_activity(scenario, alice):
    response = alice.post("/agent/activity", {"activity_sid": activity_sid(scenario, "Available")})

    assert response.status_code == 200
    state = response.get_json()
    assert state["worker"]["activity"] == "Available" and state["worker"]["available"] is True
    assert state["message"] == "You are now Available."
    assert scenario.activity_of("Alice") == "Available"
    assert [a["name"] for a in state["activities"] if a["current"]] == ["Available"]


def test_activities_set_by_the_call_flow_are_not_offered_and_cannot_be_chosen(scenario, alice):
    state = alice.json("/agent/state.json")
    names = {activity["name"] for activity in state["activities"]}
    assert {"Available", "Offline", "Break"} <= names and not names & {"On a call", "Wrap-up"}

    response = alice.post("/agent/activity", {"activity_sid": activity_sid(scenario, "On a call")})

    assert response.status_code == 400
    assert response.get_json()["code"] == 20001 and "not an activity you can choose" in response.get_json()["message"]
    assert scenario.activity_of("Alice") == "Offline"


def test_pending_offer_shows_the_caller_their_menu_choice_and_the_time_left(scenario, alice):
    _, state = offered_call(scenario, alice)

    offer = state["reservation"]
    assert offer["caller"] == CALLER
    assert offer["choices"] == {"selected_product": "sales"}
    assert offer["queue"] == "Sales"
    # The phone rings 12 s (voice.ring_seconds), then Twilio gives up: the offer's 30 s timeout leaves room for
    # the answer and the key press, and promised the agent 30 s they did not have.
    assert offer["seconds_left"] == 12
    scenario.clock.advance(5)
    assert alice.json("/agent/state.json")["reservation"]["seconds_left"] == 7
    leg = scenario.agent_leg(offer["reservation_sid"])
    scenario.post(f"/voice/agent/answer?reservation={offer['reservation_sid']}", CallSid=leg.call_sid,
                  CallStatus="in-progress")
    assert alice.json("/agent/state.json")["reservation"]["seconds_left"] == 60  # answered: the prompt decides


def test_accept_bridges_the_caller_then_wrap_up_and_complete_make_the_agent_available(scenario, alice):
    caller, state = offered_call(scenario, alice)
    reservation = state["reservation"]["reservation_sid"]

    accepted = alice.post(f"/agent/reservations/{reservation}/accept")

    assert accepted.status_code == 200, accepted.get_data(as_text=True)
    assert accepted.get_json()["task"]["status"] == "assigned" and accepted.get_json()["reservation"] is None
    # The caller stays in line until the agent's phone is answered, then exactly they are brought in.
    assert not scenario.rest.sent("POST", f"Queues/{QUEUE_SID}/Members/{caller}")
    leg = scenario.agent_leg(reservation)
    joined = scenario.post(f"/voice/agent/answer?reservation={reservation}", CallSid=leg.call_sid)
    assert "<Conference" in joined.get_data(as_text=True)
    [dequeue] = scenario.rest.sent("POST", f"Queues/{QUEUE_SID}/Members/{caller}")
    assert dequeue["Url"] == f"{PUBLIC_BASE_URL}/voice/caller/connect"
    assert scenario.call(caller).outcome == "answered"
    assert scenario.activity_of("Alice") == "On a call"

    task_sid = accepted.get_json()["task"]["sid"]
    wrapping = alice.post(f"/agent/tasks/{task_sid}/wrap-up")
    assert wrapping.status_code == 200
    assert wrapping.get_json()["task"]["status"] == "wrapping"
    assert scenario.activity_of("Alice") == "Wrap-up"

    done = alice.post(f"/agent/tasks/{task_sid}/complete")  # before the 30 s wrap-up timer
    assert done.status_code == 200
    assert done.get_json()["task"] is None
    assert scenario.task(caller).assignment_status == "completed"
    assert scenario.activity_of("Alice") == "Available"
    scenario.advance(30)  # the wrap-up timer finds the task done and changes nothing
    assert scenario.activity_of("Alice") == "Available"


def test_complete_keeps_an_activity_the_agent_chose_during_wrap_up(scenario, alice):
    caller, state = offered_call(scenario, alice)
    task_sid = alice.post(f"/agent/reservations/{state['reservation']['reservation_sid']}/accept").get_json()["task"]["sid"]
    alice.post(f"/agent/tasks/{task_sid}/wrap-up")
    alice.post("/agent/activity", {"activity_sid": activity_sid(scenario, "Break")})

    alice.post(f"/agent/tasks/{task_sid}/complete")

    assert scenario.task(caller).assignment_status == "completed"
    assert scenario.activity_of("Alice") == "Break"


def test_complete_without_wrap_up_ends_the_task_and_frees_the_agent(scenario, alice):
    caller, state = offered_call(scenario, alice)
    task_sid = alice.post(f"/agent/reservations/{state['reservation']['reservation_sid']}/accept").get_json()["task"]["sid"]

    alice.post(f"/agent/tasks/{task_sid}/complete")

    assert scenario.task(caller).assignment_status == "completed"
    assert scenario.activity_of("Alice") == "Available"
    assert scenario.call(caller).date_ended is not None


def test_reject_passes_the_caller_on_and_stops_the_agents_phone(scenario, alice):
    scenario.set_activity("Carol", "Available")
    scenario.clock.advance(5)  # Carol has been idle longer than Alice will be
    alice.post("/agent/activity", {"activity_sid": activity_sid(scenario, "Available")})
    scenario.set_activity("Carol", "Break")
    caller = scenario.dial(digits="1")
    scenario.deliver()
    reservation = alice.json("/agent/state.json")["reservation"]["reservation_sid"]
    leg = scenario.agent_leg(reservation)

    rejected = alice.post(f"/agent/reservations/{reservation}/reject")

    assert rejected.status_code == 200
    assert rejected.get_json()["reservation"] is None
    assert scenario.reservations(caller)[0].reservation_status == "rejected"
    assert scenario.activity_of("Alice") == "Available"  # a deliberate reject keeps the agent's activity
    assert scenario.rest.sent("POST", f"Calls/{leg.call_sid}") == [{"Status": "canceled"}]
    assert scenario.task(caller).assignment_status == "pending"  # not offered to Alice again in this step
    scenario.set_activity("Carol", "Available")
    scenario.deliver()
    by_worker = {r.worker_sid: r.reservation_status for r in scenario.reservations(caller)}
    assert by_worker == {scenario.worker("Alice").sid: "rejected", scenario.worker("Carol").sid: "pending"}


def test_going_offline_with_an_offer_pending_turns_it_down(scenario, alice):
    caller, _ = offered_call(scenario, alice)

    response = alice.post("/agent/activity", {"activity_sid": activity_sid(scenario, "Offline")})

    assert response.status_code == 200
    assert scenario.reservations(caller)[0].reservation_status == "rejected"
    assert scenario.activity_of("Alice") == "Offline"


def test_accepting_an_offer_that_timed_out_is_refused_with_410(scenario, alice):
    caller, state = offered_call(scenario, alice)
    scenario.advance(30)

    response = alice.post(f"/agent/reservations/{state['reservation']['reservation_sid']}/accept")

    assert response.status_code == 410
    assert response.get_json()["code"] == 20409 and "timeout" in response.get_json()["message"]
    assert scenario.task(caller).assignment_status == "pending"


def test_plain_form_posts_work_without_javascript(scenario, alice):
    token = alice.page_token("/agent")
    response = alice.client.post("/agent/activity", data={"activity_sid": activity_sid(scenario, "Break"),
                                                          "csrf_token": token})

    assert response.status_code == 302 and response.headers["Location"].endswith("/agent")
    assert "You are now Break." in alice.get("/agent").get_data(as_text=True)


def test_console_page_shows_the_offer_when_it_is_loaded(scenario, alice):
    offered_call(scenario, alice)

    page = alice.get("/agent").get_data(as_text=True)

    assert CALLER in page and "Accept" in page and "selected_product" in page


# -- isolation ----------------------------------------------------------------------------------------

def test_an_agent_cannot_accept_reject_or_finish_another_agents_work(scenario, app, alice):
    from tests.web.conftest import Browser

    caller, state = offered_call(scenario, alice)
    reservation = state["reservation"]["reservation_sid"]
    carol = Browser(app)
    carol.login("carol")

    assert carol.post(f"/agent/reservations/{reservation}/accept").status_code == 404
    assert carol.post(f"/agent/reservations/{reservation}/reject").status_code == 404
    assert carol.json("/agent/state.json")["reservation"] is None
    task_sid = alice.post(f"/agent/reservations/{reservation}/accept").get_json()["task"]["sid"]
    assert carol.post(f"/agent/tasks/{task_sid}/wrap-up").status_code == 404
    assert carol.post(f"/agent/tasks/{task_sid}/complete").status_code == 404
    assert scenario.task(caller).assignment_status == "assigned"


def test_an_agent_cannot_set_another_agents_activity_or_see_the_dashboard(scenario, alice):
    bob = scenario.worker("Bob").sid
    response = alice.post(f"/dashboard/agents/{bob}/activity", {"activity_sid": activity_sid(scenario, "Available")})

    assert response.status_code == 403
    assert response.get_json()["status"] == 403
    assert scenario.activity_of("Bob") == "Offline"
    assert alice.get("/dashboard").status_code == 403
    assert alice.get("/dashboard/state.json").status_code == 403


def test_a_supervisor_has_no_agent_console(supervisor):
    assert supervisor.get("/agent").status_code == 403
    assert supervisor.post("/agent/activity", {"activity_sid": "WA" + "0" * 32}).status_code == 403


def test_choosing_available_during_wrap_up_ends_it_as_a_text_of_on_does(scenario, alice):
    """The console said "You are now Available" and no call came until the wrap-up time ran out: the call in
    wrap-up still held the agent's only slot."""
    caller, state = offered_call(scenario, alice)
    alice.post(f"/agent/reservations/{state['reservation']['reservation_sid']}/accept")
    task_sid = scenario.call(caller).task_sid
    alice.post(f"/agent/tasks/{task_sid}/wrap-up")
    assert scenario.activity_of("Alice") == "Wrap-up"
    waiting = scenario.dial(digits="1")

    answer = alice.post("/agent/activity", {"activity_sid": activity_sid(scenario, "Available")}).get_json()

    assert answer["message"] == "You are now Available. Wrap-up ended."
    assert scenario.task(caller).assignment_status == "completed"
    scenario.deliver()
    assert [r.reservation_status for r in scenario.reservations(waiting)] == ["pending"]
