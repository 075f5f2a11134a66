"""`/Tasks/{WT}/Explanation`, `/Workers/{WK}/Explanation` and `flask routing explain`."""

from __future__ import annotations

import json

import pytest


@pytest.fixture
def center(taskrouter):
    """A sales queue, a workflow routing everything to it, alice (sales, offline) and bob (support, available)."""
    ws = taskrouter.workspaces.create(friendly_name="Explained").sid
    workspace = taskrouter.workspaces(ws)
    activities = {a.friendly_name: a.sid for a in workspace.activities.list()}
    queue = workspace.task_queues.create(friendly_name="Sales", target_workers="skills HAS 'sales'").sid
    workflow = workspace.workflows.create(
        friendly_name="Inbound",
        configuration=json.dumps({"task_routing": {"filters": [
            {"filter_friendly_name": "VIP", "expression": "vip == true", "targets": [{"queue": queue}]},
            {"filter_friendly_name": "Sales", "expression": "type == 'sales'",
             "targets": [{"queue": queue, "timeout": 60}]}]}})).sid
    alice = workspace.workers.create(friendly_name="alice", activity_sid=activities["Offline"],
                                     attributes=json.dumps({"skills": ["sales"]})).sid
    bob = workspace.workers.create(friendly_name="bob", activity_sid=activities["Available"],
                                   attributes=json.dumps({"skills": ["support"]})).sid
    task = workspace.tasks.create(workflow_sid=workflow, attributes=json.dumps({"type": "sales"})).sid
    return {"ws": ws, "queue": queue, "alice": alice, "bob": bob, "task": task}


def get(client, path):
    response = client.request("GET", f"http://taskrouter.local/v1{path}")
    return response.status_code, json.loads(response.text)


def test_task_explanation_names_each_workers_reason_and_the_filters(client, center):
    status, body = get(client, f"/Workspaces/{center['ws']}/Tasks/{center['task']}/Explanation")

    assert status == 200
    assert body["url"] == f"http://taskrouter.local/v1/Workspaces/{center['ws']}/Tasks/{center['task']}/Explanation"
    assert body["links"]["task"].endswith(f"/Tasks/{center['task']}")
    assert (body["task_sid"], body["assignment_status"], body["matched_filter"]) == (center["task"], "pending", "Sales")
    assert [(f["name"], f["outcome"]) for f in body["filters"]] == [("VIP", "no_match"), ("Sales", "current")]
    assert body["filters"][0]["clauses"] == [{"text": "vip == true", "left": None, "right": True, "result": False}]
    assert body["target"]["queue_sid"] == center["queue"] and body["target"]["seconds_left"] == 60
    assert body["target"]["moves_on_at"].endswith("Z")
    reasons = {w["worker_sid"]: w["reason"] for w in body["workers"]}
    assert reasons == {center["alice"]: "activity_unavailable", center["bob"]: "not_in_queue"}
    bob = next(w for w in body["workers"] if w["worker_sid"] == center["bob"])
    assert bob["clauses"] == [{"text": "skills HAS 'sales'", "left": ["support"], "right": "sales", "result": False}]
    assert bob["links"]["worker"].endswith(f"/Workers/{center['bob']}")


def test_worker_explanation_lists_waiting_tasks(client, center):
    status, body = get(client, f"/Workspaces/{center['ws']}/Workers/{center['alice']}/Explanation")

    assert status == 200
    assert body["url"].endswith(f"/Workers/{center['alice']}/Explanation")
    assert (body["worker_name"], body["activity_name"], body["available"]) == ("alice", "Offline", False)
    assert [(t["task_sid"], t["reason"]) for t in body["tasks"]] == [(center["task"], "activity_unavailable")]
    assert body["tasks"][0]["links"]["task"].endswith(f"/Tasks/{center['task']}")


def test_unknown_task_or_worker_is_a_twilio_404(client, center):
    for path in (f"/Workspaces/{center['ws']}/Tasks/WT{'0' * 32}/Explanation",
                 f"/Workspaces/{center['ws']}/Workers/WK{'0' * 32}/Explanation",
                 f"/Workspaces/WS{'0' * 32}/Tasks/{center['task']}/Explanation"):
        status, body = get(client, path)
        assert status == 404
        assert body["code"] == 20404 and body["status"] == 404 and "more_info" in body


def test_task_of_another_workspace_is_not_found(client, taskrouter, center):
    other = taskrouter.workspaces.create(friendly_name="Other").sid

    status, body = get(client, f"/Workspaces/{other}/Tasks/{center['task']}/Explanation")

    assert (status, body["code"]) == (404, 20404)


def test_another_account_cannot_read_an_explanation(other_client, center):
    status, body = get(other_client, f"/Workspaces/{center['ws']}/Tasks/{center['task']}/Explanation")

    assert (status, body["code"]) == (404, 20404)


def test_explanation_needs_credentials(app, center):
    response = app.test_client().get(f"/v1/Workspaces/{center['ws']}/Tasks/{center['task']}/Explanation")

    assert response.status_code == 401
    assert response.get_json()["code"] == 20003


def test_cli_prints_a_report_for_tasks_and_workers(app, center):
    result = app.test_cli_runner().invoke(args=["routing", "explain", center["task"], center["bob"]])

    assert result.exit_code == 0, result.output
    assert f"Task {center['task']}: pending" in result.output
    assert "alice" in result.output and "activity_unavailable" in result.output
    assert "Worker bob" in result.output and "not_in_queue" in result.output


def test_cli_refuses_other_sids_and_reports_unknown_ones(app, center):
    runner = app.test_cli_runner()

    assert runner.invoke(args=["routing", "explain", "WS" + "0" * 32]).exit_code == 2
    unknown = runner.invoke(args=["routing", "explain", "WT" + "0" * 32])
    assert unknown.exit_code == 1 and "not found" in unknown.output
