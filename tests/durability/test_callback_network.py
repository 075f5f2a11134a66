"""Callbacks never reach the networks the operator blocked (CALLBACK_BLOCKED_NETWORKS), whoever set the URL.

A URL with a blocked address is refused when it is saved (Twilio-style 400, nothing changed). A URL
whose host name resolves to a blocked address is stopped on the address the connection is actually
made to, and given up on at once: retrying could only fail the same way. Redirects are not followed
at all. The callback servers are real sockets on 127.0.0.1 and 127.0.0.2 (both loopback on Linux).
"""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from app import create_app
from callcenter.routing import workflows, workspaces
from callcenter.routing.callback_network import CallbackPolicy, parse_networks
from callcenter.routing.errors import InvalidParameter
from callcenter.routing.models import Workspace
from tests.durability.test_callback_faults import ACCEPT, CallbackServer, messages, staffed
from tests.routing.conftest import snapshot

ACCOUNT = "AC" + "7" * 32


@pytest.fixture
def servers():
    started: list[CallbackServer] = []

    def start(host: str = "127.0.0.1") -> CallbackServer:
        server = CallbackServer(host=host).start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


def block(center, networks: str, *trusted: str) -> None:
    center.router.callback_policy = CallbackPolicy.from_settings(networks, trusted)


# -- when a URL is saved ------------------------------------------------------------------------------

@pytest.mark.parametrize(("networks", "url"), [
    ("metadata", "http://169.254.169.254/latest/meta-data/"),
    ("metadata", "http://[::ffff:169.254.169.254]/"),  # the same address, written as IPv6
    ("metadata", "http://[fd00:ec2::254]/"),
    ("private", "http://10.1.2.3:8080/events"),
    ("private", "https://localhost/events"),
    ("private", "http://[::1]/events"),
    ("private", "http://0.0.0.0:5000/"),
    ("10.0.0.0/8, 192.168.0.0/16", "http://192.168.1.20/"),
])
def test_a_callback_url_with_a_blocked_address_is_refused_and_changes_nothing(center, networks, url):
    block(center, networks)
    workflow = center.workflow(default=center.queue())
    before = snapshot(center)
    with pytest.raises(InvalidParameter) as refused:
        workflows.update_workflow(center.router, center.ws, workflow, assignment_callback_url=url)
    assert refused.value.code == 20001 and refused.value.status == 400
    assert refused.value.message.startswith("AssignmentCallbackUrl may not point at ")
    assert "its own network" in refused.value.message
    with pytest.raises(InvalidParameter, match=r"^EventCallbackUrl may not point at"):
        workspaces.update_workspace(center.router, center.ws, event_callback_url=url)
    assert snapshot(center) == before


def test_a_workspace_with_a_blocked_event_callback_url_is_not_created(center):
    block(center, "private")
    with center.router.read() as session:
        before = session.scalar(select(func.count()).select_from(Workspace))
    with pytest.raises(InvalidParameter, match=r"^EventCallbackUrl may not point at 10\.0\.0\.7: .*10\.0\.0\.0/8"):
        workspaces.create_workspace(center.router, account_sid=ACCOUNT, friendly_name="Probe",
                                    event_callback_url="http://10.0.0.7/")
    with center.router.read() as session:
        assert session.scalar(select(func.count()).select_from(Workspace)) == before


def test_public_addresses_names_and_the_trusted_origin_are_accepted(center):
    block(center, "private", "http://127.0.0.1:5000/base")
    workflow = center.workflow(default=center.queue())
    for url in ("https://crm.example.com/assign", "http://203.0.113.9/assign", "http://127.0.0.1:5000/assign"):
        workflows.update_workflow(center.router, center.ws, workflow, fallback_assignment_callback_url=url)
    with pytest.raises(InvalidParameter):  # trusted is that origin, not its host on another port
        workflows.update_workflow(center.router, center.ws, workflow, fallback_assignment_callback_url="http://127.0.0.1:22/")


def test_the_default_blocks_only_link_local_addresses(center):
    workflow = center.workflow(default=center.queue())
    workflows.update_workflow(center.router, center.ws, workflow, assignment_callback_url="http://127.0.0.1:5000/a")
    workflows.update_workflow(center.router, center.ws, workflow, assignment_callback_url="http://10.0.0.5/a")
    with pytest.raises(InvalidParameter, match=r"169\.254\.0\.0/16"):
        workflows.update_workflow(center.router, center.ws, workflow, assignment_callback_url="http://169.254.169.254/")


def test_network_settings_are_parsed_and_a_bad_one_is_named():
    assert parse_networks("none") == ()
    assert parse_networks("") == ()
    private = parse_networks("private")
    assert all(network in private for network in parse_networks("metadata"))
    assert [str(network) for network in parse_networks(" 10.1.2.3 ,fd00::1/8")] == ["10.1.2.3/32", "fd00::/8"]
    with pytest.raises(ValueError, match=r"CALLBACK_BLOCKED_NETWORKS: 'intranet' is not a network"):
        parse_networks("private,intranet")


# -- when a callback is sent --------------------------------------------------------------------------

def test_a_name_that_resolves_to_a_blocked_address_gets_no_request_and_is_given_up_at_once(center, servers):
    server = servers()
    server.default = (200, ACCEPT)
    # Saved while allowed, then the operator blocks the network (the same as a name that now resolves there).
    staffed(center, "alice", assignment_callback_url=f"http://localhost:{server.port}/assign")
    block(center, "127.0.0.0/8, ::1")
    task = center.task()

    assert center.router.deliver_outbox() == 1
    assert server.requests == []
    (message,) = messages(center)
    assert (message.status, message.attempts) == ("dead", 1)
    assert message.last_error.startswith("blocked: localhost is 127.0.0.1 (in 127.0.0.0/8)")
    assert center.get_task(task).assignment_status == "reserved"  # the reservation timeout decides, as for any failure


def test_an_https_callback_is_stopped_before_its_connection_is_made(center, servers):
    server = servers()  # plain HTTP: a TLS handshake would fail, but no connection is ever made
    staffed(center, "alice", assignment_callback_url=f"https://localhost:{server.port}/assign")
    block(center, "private")
    center.task()

    assert center.router.deliver_outbox() == 1
    assert server.requests == []
    (message,) = messages(center)
    assert message.status == "dead" and message.last_error.startswith("blocked: localhost is ")


def test_a_redirect_is_not_followed_and_the_fallback_url_is_tried(center, servers):
    inside, outside = servers("127.0.0.2"), servers()
    outside.script["/assign"] = [("redirect", f"{inside.base}/admin")]
    outside.script["/fallback"] = [("redirect", f"{outside.base}/moved")]
    staffed(center, "alice", assignment_callback_url=f"{outside.base}/assign",
            fallback_assignment_callback_url=f"{outside.base}/fallback")
    center.task()

    assert center.router.deliver_outbox() == 1
    assert outside.paths() == ["/assign", "/fallback"] and inside.requests == []
    (message,) = messages(center)
    assert (message.status, message.last_error) == ("pending", "HTTP 302 (callbacks do not follow redirects)")


def test_a_blocked_primary_url_falls_back_to_the_fallback_url(center, servers):
    blocked, fallback = servers("127.0.0.2"), servers()
    fallback.default = (200, ACCEPT)
    staffed(center, "alice", assignment_callback_url=f"{blocked.base}/assign",
            fallback_assignment_callback_url=f"{fallback.base}/fallback")
    block(center, "127.0.0.2/32")
    task = center.task()

    assert center.router.deliver_outbox() == 1
    assert blocked.requests == [] and fallback.paths() == ["/fallback"]
    assert center.get_task(task).assignment_status == "assigned"


def test_a_blocked_url_with_a_failing_fallback_is_retried_for_the_fallback(center, servers):
    blocked, fallback = servers("127.0.0.2"), servers()
    fallback.script["/fallback"] = [(503, "busy")]
    staffed(center, "alice", assignment_callback_url=f"{blocked.base}/assign",
            fallback_assignment_callback_url=f"{fallback.base}/fallback")
    block(center, "127.0.0.2/32")
    center.task()

    assert center.router.deliver_outbox() == 1
    (message,) = messages(center)
    assert (message.status, message.last_error) == ("pending", "HTTP 503")


def test_event_callbacks_to_a_blocked_address_are_given_up_and_later_events_still_go_to_allowed_urls(center, servers):
    server = servers()
    center.workflow(default=center.queue())
    workspaces.update_workspace(center.router, center.ws, event_callback_url=f"{server.base}/events",
                                events_filter="task.created")
    block(center, "127.0.0.1/32")
    center.task()
    assert center.router.deliver_outbox() == 1
    assert server.requests == []
    assert [message.status for message in messages(center, "event")] == ["dead"]

    block(center, "127.0.0.1/32", server.base)  # the operator trusts that origin
    center.task()
    assert center.router.deliver_outbox() == 1
    assert server.paths() == ["/events"]


# -- the app's settings ---------------------------------------------------------------------------------

# (a bad CALLBACK_BLOCKED_NETWORKS stopping the app: tests/test_app.py, with the other settings)


def test_the_app_blocks_what_the_setting_says_and_trusts_its_own_callback_base_url(tmp_path):
    app = create_app({"TESTING": True, "DATABASE_URL": f"sqlite:///{tmp_path}/cc.db", "RUN_SWEEPER": False,
                      "AUTO_MIGRATE": True, "CALLBACK_BLOCKED_NETWORKS": "private",
                      "CALLBACK_BASE_URL": "http://127.0.0.1:8000", "PUBLIC_BASE_URL": "https://cc.example.ngrok.app"})
    router = app.extensions["router"]
    try:
        policy = router.callback_policy
        assert policy.network_of("10.0.0.1") is not None and policy.network_of("8.8.8.8") is None
        assert policy.trusted == {("127.0.0.1", 8000), ("cc.example.ngrok.app", 443)}
        workspace = workspaces.create_workspace(router, account_sid=ACCOUNT, friendly_name="Own",
                                                event_callback_url="http://127.0.0.1:8000/voice/events")
        with pytest.raises(InvalidParameter):
            workspaces.update_workspace(router, workspace.sid, event_callback_url="http://127.0.0.1:6379/")
    finally:
        router.dispose()

