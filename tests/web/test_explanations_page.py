"""The dashboard answers "why is this call still waiting?" and "why does this agent get nothing?" in one click."""

from __future__ import annotations

import re


def test_waiting_call_links_to_why_it_waits_and_the_page_names_each_agents_reason(scenario, supervisor):
    scenario.set_activity("Bob", "Available")  # support only: not in the Sales queue
    caller = scenario.dial(digits="1")  # sales: Alice and Carol are offline
    task_sid = scenario.call(caller).task_sid

    state = supervisor.json("/dashboard/state.json")
    assert [call["sid"] for call in state["waiting_calls"]] == [task_sid]
    page = supervisor.get("/dashboard").get_data(as_text=True)
    assert f"/dashboard/tasks/{task_sid}/explanation" in page

    explanation = supervisor.get(f"/dashboard/tasks/{task_sid}/explanation")
    assert explanation.status_code == 200
    html = explanation.get_data(as_text=True)
    assert "Why is this call still waiting?" in html
    reasons = dict(re.findall(r'<a href="/dashboard/agents/WK\w+/explanation">(\w+)</a></th>\s*<td>([^<]+)</td>', html))
    assert reasons["Bob"].startswith("Not in the queue")
    assert reasons["Alice"].startswith("In an unavailable activity")
    assert reasons["Carol"].startswith("In an unavailable activity")
    assert "selected_product == &#39;sales&#39;" in html or "selected_product == 'sales'" in html


def test_attribute_values_read_as_written_not_as_json_escapes(scenario, supervisor):
    from callcenter.routing import tasks

    task = tasks.create_task(scenario.router, scenario.center.workspace_sid, workflow_sid=scenario.center.workflow_sid,
                             task_channel="voice", attributes={"selected_product": "R&D O'Brien <b>"})
    html = supervisor.get(f"/dashboard/tasks/{task.sid}/explanation").get_data(as_text=True)
    assert "&#34;R&amp;D O&#39;Brien &lt;b&gt;&#34;" in html
    assert "\\u0026" not in html and "\\u0027" not in html and "<b>" not in html


def test_agent_explanation_lists_the_waiting_calls_they_could_take(scenario, supervisor):
    caller = scenario.dial(digits="1")
    alice = scenario.worker("Alice").sid
    html = supervisor.get(f"/dashboard/agents/{alice}/explanation").get_data(as_text=True)
    assert "Why does Alice get no calls?" in html
    assert scenario.call(caller).task_sid in html and "In an unavailable activity" in html


def test_explanations_are_for_supervisors_only(alice, scenario):
    caller = scenario.dial(digits="1")
    assert alice.get(f"/dashboard/tasks/{scenario.call(caller).task_sid}/explanation").status_code == 403


def test_unknown_task_is_not_found(supervisor):
    assert supervisor.get("/dashboard/tasks/WT" + "0" * 32 + "/explanation").status_code == 404
