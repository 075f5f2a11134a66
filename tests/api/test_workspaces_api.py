"""Workspaces, Activities and TaskChannels through the official twilio SDK."""

from __future__ import annotations

import base64
from unittest.mock import patch

import pytest
from twilio.base.exceptions import TwilioException, TwilioRestException

from tests.api.conftest import ACCOUNT_SID, AUTH_TOKEN


def test_workspace_create_fetch_update_delete(taskrouter):
    workspace = taskrouter.workspaces.create(friendly_name="Support", event_callback_url="http://app.local/events",
                                             events_filter="task.created,task.canceled")
    assert workspace.sid.startswith("WS") and len(workspace.sid) == 34
    assert workspace.default_activity_name == "Offline"
    assert workspace.timeout_activity_name == "Offline"
    assert workspace.multi_task_enabled is True
    assert workspace.prioritize_queue_order == "FIFO"
    assert workspace.date_created.tzinfo is not None  # parsed: the date format is exactly Twilio's
    assert workspace.url == f"http://taskrouter.local/v1/Workspaces/{workspace.sid}"
    assert workspace.links["activities"].endswith(f"/Workspaces/{workspace.sid}/Activities")

    fetched = taskrouter.workspaces(workspace.sid).fetch()
    assert fetched.friendly_name == "Support"
    assert fetched.events_filter == "task.created,task.canceled"

    updated = taskrouter.workspaces(workspace.sid).update(friendly_name="Sales", prioritize_queue_order="LIFO")
    assert (updated.friendly_name, updated.prioritize_queue_order) == ("Sales", "LIFO")

    assert taskrouter.workspaces(workspace.sid).delete() is True
    with pytest.raises(TwilioRestException) as raised:
        taskrouter.workspaces(workspace.sid).fetch()
    assert (raised.value.status, raised.value.code) == (404, 20404)


def test_new_workspace_has_the_default_activities_and_channels(taskrouter):
    workspace = taskrouter.workspaces.create(friendly_name="Defaults")
    activities = {a.friendly_name: a.available for a in taskrouter.workspaces(workspace.sid).activities.list()}
    assert activities == {"Offline": False, "Available": True, "Unavailable": False}
    channels = {c.unique_name for c in taskrouter.workspaces(workspace.sid).task_channels.list()}
    assert channels == {"default", "voice", "sms", "chat", "video"}


def test_fifo_template_creates_a_queue_and_workflow(taskrouter):
    workspace = taskrouter.workspaces.create(friendly_name="Fifo", template="FIFO")
    queues = taskrouter.workspaces(workspace.sid).task_queues.list()
    workflows = taskrouter.workspaces(workspace.sid).workflows.list()
    assert [q.target_workers for q in queues] == ["1==1"]
    assert [w.friendly_name for w in workflows] == ["Default Fifo Workflow"]
    assert queues[0].sid in workflows[0].configuration


def test_workspace_list_pages_with_absolute_next_page_urls(taskrouter, clock):
    for number in range(5):
        taskrouter.workspaces.create(friendly_name=f"Paged {number}")
        clock.advance(1)
    page = taskrouter.workspaces.page(page_size=2)
    assert page.next_page_url.startswith("http://taskrouter.local/v1/Workspaces?")
    names = [w.friendly_name for w in taskrouter.workspaces.stream(page_size=2)]
    assert names == [f"Paged {n}" for n in range(5)]


def test_sdk_list_with_a_limit_over_the_page_maximum_is_served_in_pages_of_1000(taskrouter, http):
    """The SDK's list(limit=N) asks for PageSize=N: above 1000, Twilio serves pages of 1000; so do we."""
    workspace = taskrouter.workspaces.create(friendly_name="Many")
    activities = taskrouter.workspaces(workspace.sid).activities
    assert len(activities.list(limit=1500)) == 3  # Offline, Available, Unavailable
    page = activities.page(page_size=5000)
    assert page._payload["meta"]["page_size"] == 1000


def test_list_filter_by_friendly_name(taskrouter):
    taskrouter.workspaces.create(friendly_name="Alpha")
    taskrouter.workspaces.create(friendly_name="Beta")
    assert [w.friendly_name for w in taskrouter.workspaces.list(friendly_name="Beta")] == ["Beta"]


def test_activity_create_update_delete_and_filters(taskrouter):
    ws = taskrouter.workspaces.create(friendly_name="Acts").sid
    brk = taskrouter.workspaces(ws).activities.create(friendly_name="Break", available=False)
    assert brk.sid.startswith("WA") and brk.available is False
    assert [a.friendly_name for a in taskrouter.workspaces(ws).activities.list(available="true")] == ["Available"]
    renamed = taskrouter.workspaces(ws).activities(brk.sid).update(friendly_name="Lunch")
    assert renamed.friendly_name == "Lunch"
    assert taskrouter.workspaces(ws).activities(brk.sid).delete() is True
    names = {a.friendly_name for a in taskrouter.workspaces(ws).activities.list()}
    assert "Lunch" not in names


def test_duplicate_activity_name_is_a_conflict(taskrouter):
    ws = taskrouter.workspaces.create(friendly_name="Dup").sid
    with pytest.raises(TwilioRestException) as raised:
        taskrouter.workspaces(ws).activities.create(friendly_name="Available", available=True)
    assert (raised.value.status, raised.value.code) == (409, 20409)


def test_task_channel_create_and_fetch_by_unique_name(taskrouter):
    ws = taskrouter.workspaces.create(friendly_name="Chans").sid
    channel = taskrouter.workspaces(ws).task_channels.create(friendly_name="Email", unique_name="email")
    assert channel.sid.startswith("TC")
    assert taskrouter.workspaces(ws).task_channels("email").fetch().sid == channel.sid


def test_task_channel_update_is_kept(taskrouter, router):
    """A change made to the configuration cache's copy of the channel answered 200 and was never written."""
    ws = taskrouter.workspaces.create(friendly_name="Channels").sid
    updated = taskrouter.workspaces(ws).task_channels("chat").update(friendly_name="Web chat",
                                                                     channel_optimized_routing=True)
    assert (updated.friendly_name, updated.channel_optimized_routing) == ("Web chat", True)
    router.configurations.drop(ws)  # as another process would read it
    fetched = taskrouter.workspaces(ws).task_channels("chat").fetch()
    assert (fetched.friendly_name, fetched.channel_optimized_routing) == ("Web chat", True)


def test_task_channel_unique_name_with_hyphen_is_refused(taskrouter):
    ws = taskrouter.workspaces.create(friendly_name="Chans").sid
    with pytest.raises(TwilioRestException) as raised:
        taskrouter.workspaces(ws).task_channels.create(friendly_name="Bad", unique_name="e-mail")
    assert (raised.value.status, raised.value.code) == (400, 20001)


def test_missing_friendly_name_is_a_400_with_code_20001(taskrouter):
    with pytest.raises(TwilioRestException) as raised:
        taskrouter.workspaces.create(friendly_name=None)
    assert (raised.value.status, raised.value.code) == (400, 20001)
    assert "FriendlyName" in raised.value.msg


def test_events_filter_accepts_flex_transfer_events_and_refuses_unknown_ones(taskrouter):
    flex = "task.created,task.transfer-initiated,task.transfer-completed"
    workspace = taskrouter.workspaces.create(friendly_name="From Flex", event_callback_url="https://crm.example.com/e",
                                             events_filter=flex)
    assert workspace.events_filter == flex
    with pytest.raises(TwilioRestException) as raised:
        taskrouter.workspaces(workspace.sid).update(events_filter="task.created,task.teleported")
    assert (raised.value.status, raised.value.code) == (400, 20001) and "task.teleported" in raised.value.msg


def test_an_event_callback_url_on_the_metadata_service_is_a_400_and_changes_nothing(taskrouter):
    workspace = taskrouter.workspaces.create(friendly_name="Probe", event_callback_url="https://crm.example.com/events")
    with pytest.raises(TwilioRestException) as raised:
        taskrouter.workspaces(workspace.sid).update(event_callback_url="http://169.254.169.254/latest/meta-data/")
    assert (raised.value.status, raised.value.code) == (400, 20001)
    assert raised.value.msg.endswith("EventCallbackUrl may not point at 169.254.169.254: this server does not send "
                                     "callbacks to 169.254.0.0/16 (its own network)")
    assert taskrouter.workspaces(workspace.sid).fetch().event_callback_url == "https://crm.example.com/events"


def test_another_account_cannot_see_or_change_a_workspace(taskrouter, other_client):
    ws = taskrouter.workspaces.create(friendly_name="Private").sid
    other = other_client.taskrouter.v1
    assert other.workspaces.list() == []
    for attempt in (lambda: other.workspaces(ws).fetch(), lambda: other.workspaces(ws).update(friendly_name="x"),
                    lambda: other.workspaces(ws).delete(), lambda: other.workspaces(ws).activities.create(
                        friendly_name="Sneaky", available=True)):
        with pytest.raises(TwilioRestException) as raised:
            attempt()
        assert raised.value.status == 404
    assert taskrouter.workspaces(ws).fetch().friendly_name == "Private"


def _basic(user: str, password: str) -> dict:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def test_a_non_ascii_password_is_refused_like_any_wrong_one(app):
    """It was a 500 (compare_digest refuses non-ASCII str) for account sids that exist only: an oracle."""
    client = app.test_client()
    for user in (ACCOUNT_SID, "AC" + "b" * 32):
        refused = client.get("/v1/Workspaces", headers=_basic(user, "pässwörd"))
        assert (refused.status_code, refused.get_json()["code"]) == (401, 20003)


def test_demo_modes_account_opens_nothing_outside_demo_mode(app):
    """Its token was printed by a demo start; README's next step runs the real thing on the same file."""
    from callcenter.routing import accounts
    from callcenter.simulator.demo import DEMO_ACCOUNT_SID

    router = app.extensions["router"]
    accounts.ensure_account(router, DEMO_ACCOUNT_SID, "printed-demo-token")
    key = accounts.create_api_key(router, DEMO_ACCOUNT_SID)
    client = app.test_client()
    with patch.dict(app.config, {"DEMO_MODE": True}):
        assert client.get("/v1/Workspaces", headers=_basic(DEMO_ACCOUNT_SID, "printed-demo-token")).status_code == 200
    for user, password in ((DEMO_ACCOUNT_SID, "printed-demo-token"), (key.sid, key.secret)):
        refused = client.get("/v1/Workspaces", headers=_basic(user, password))
        assert (refused.status_code, refused.get_json()["code"]) == (401, 20003)


def test_forwarded_headers_from_a_client_that_is_not_a_trusted_proxy_are_ignored(app):
    """The `url` fields (and Twilio's signatures) follow X-Forwarded-Host only from FORWARDED_ALLOW_IPS."""
    client = app.test_client()
    forwarded = {**_basic(ACCOUNT_SID, AUTH_TOKEN), "X-Forwarded-Proto": "https", "X-Forwarded-Host": "evil.example"}
    direct = client.get("/v1/Workspaces", headers=forwarded, environ_base={"REMOTE_ADDR": "203.0.113.9"})
    assert direct.get_json()["meta"]["url"].startswith("http://localhost/v1/Workspaces")
    proxied = client.get("/v1/Workspaces", headers=forwarded)  # from 127.0.0.1: a proxy on this machine
    assert proxied.get_json()["meta"]["url"].startswith("https://evil.example/v1/Workspaces")


def test_wrong_credentials_are_refused_with_20003(app, http):
    from twilio.rest import Client

    intruder = Client("AC" + "a" * 32, "wrong-token", http_client=http, environment={"_": "_"})
    with pytest.raises(TwilioRestException) as raised:
        intruder.taskrouter.v1.workspaces.create(friendly_name="Nope")
    assert (raised.value.status, raised.value.code) == (401, 20003)
    with pytest.raises(TwilioException):
        intruder.taskrouter.v1.workspaces.list()


def test_api_key_authenticates_for_its_account(app, router, http, taskrouter):
    from twilio.rest import Client

    from callcenter.routing import accounts

    from .conftest import ACCOUNT_SID

    ws = taskrouter.workspaces.create(friendly_name="Keyed").sid
    key = accounts.create_api_key(router, ACCOUNT_SID)
    keyed = Client(key.sid, key.secret, ACCOUNT_SID, http_client=http, environment={"_": "_"})
    assert keyed.taskrouter.v1.workspaces(ws).fetch().friendly_name == "Keyed"


def test_unknown_route_under_v1_answers_in_twilio_error_shape(app):
    import base64

    from .conftest import ACCOUNT_SID, AUTH_TOKEN

    token = base64.b64encode(f"{ACCOUNT_SID}:{AUTH_TOKEN}".encode()).decode()
    response = app.test_client().get("/v1/Nowhere", headers={"Authorization": f"Basic {token}"})
    assert response.status_code == 404
    assert response.get_json() == {"code": 20404, "message": "The requested resource /v1/Nowhere was not found",
                                   "more_info": "https://www.twilio.com/docs/errors/20404", "status": 404}
