"""Signing in, sessions, CSRF refusal, and the `flask users` commands."""

from __future__ import annotations

import ipaddress
from unittest.mock import patch

import pytest

from callcenter.database import get_router
from callcenter.web.auth import FailedSignIns, UserError, create_user, set_password
from tests.support import contact_center_app
from tests.web.conftest import PASSWORD, Browser


def test_agent_signs_in_and_lands_on_the_console(browser):
    response = browser.login("alice")

    assert response.status_code == 302 and response.headers["Location"] == "/agent"
    assert "Alice" in browser.get("/agent").get_data(as_text=True)


def test_supervisor_signs_in_and_lands_on_the_dashboard(browser):
    assert browser.login("sam").headers["Location"] == "/dashboard"


@pytest.mark.parametrize("username, password", [("alice", "wrong password!"), ("nobody", PASSWORD)])
def test_wrong_username_or_password_is_refused_with_the_same_message(browser, username, password):
    response = browser.login(username, password)

    assert response.status_code == 401
    assert "Wrong username or password." in response.get_data(as_text=True)
    assert browser.get("/agent").status_code == 302


def test_pages_need_a_signed_in_user(browser):
    page = browser.get("/agent")
    assert page.status_code == 302 and page.headers["Location"].startswith("/login?next=/agent")
    data = browser.get("/dashboard/state.json", headers={"Accept": "application/json"})
    assert data.status_code == 401
    assert data.get_json() == {"code": 20003, "message": "Sign in first.",
                               "more_info": "https://www.twilio.com/docs/errors/20003", "status": 401}
    assert browser.get("/live", headers={"Accept": "text/event-stream"}).status_code == 401


def test_sign_in_returns_to_the_page_asked_for_but_never_to_another_site(browser):
    token = browser.page_token("/login")
    inside = browser.client.post("/login?next=/dashboard", data={"username": "sam", "password": PASSWORD,
                                                                 "csrf_token": token})
    assert inside.headers["Location"] == "/dashboard"
    other = Browser(browser.app)
    outside = other.client.post("/login?next=//evil.example.com/x", data={
        "username": "sam", "password": PASSWORD, "csrf_token": other.page_token("/login")})
    assert outside.headers["Location"] == "/dashboard"
    # Control characters that browsers and werkzeug drop would turn these into //evil.example.com/x.
    for sneaky in ("/%09/evil.example.com/x", "/%0a/evil.example.com/x", "/%0d/x", "/%20/evil.example.com"):
        attempt = Browser(browser.app)
        reply = attempt.client.post(f"/login?next={sneaky}", data={
            "username": "sam", "password": PASSWORD, "csrf_token": attempt.page_token("/login")})
        assert reply.status_code == 302 and reply.headers["Location"] == "/dashboard", sneaky


def test_posts_without_a_valid_csrf_token_are_refused_and_change_nothing(scenario, alice):
    available = scenario.center.activity_sids["Available"]

    missing = alice.post("/agent/activity", {"activity_sid": available}, token=None)
    forged = alice.post("/agent/activity", {"activity_sid": available}, token="forged-token")

    for response in (missing, forged):
        assert response.status_code == 400
        assert response.get_json()["code"] == 20001 and "CSRF" in response.get_json()["message"]
    assert scenario.activity_of("Alice") == "Offline"


def test_sign_in_form_itself_needs_the_csrf_token(browser):
    response = browser.client.post("/login", data={"username": "alice", "password": PASSWORD})

    assert response.status_code == 400
    assert browser.get("/agent").status_code == 302


def test_a_token_from_another_session_is_refused(scenario, app, alice):
    other = Browser(app)
    other.login("bob")
    stolen = other.page_token("/agent")

    response = alice.post("/agent/activity", {"activity_sid": scenario.center.activity_sids["Available"]}, token=stolen)

    assert response.status_code == 400


def test_the_session_cookie_is_httponly_samesite_lax_and_secure_behind_https(app, database_url, clock):
    """The test app's PUBLIC_BASE_URL is https: its cookie is Secure. Over plain http it cannot be."""
    browser = Browser(app)
    cookie = browser.login("alice").headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Secure" in cookie

    plain = contact_center_app(database_url, clock, PUBLIC_BASE_URL="http://cc.internal:5000")
    try:
        assert (plain.config["SESSION_COOKIE_SECURE"], plain.config["SESSION_COOKIE_SAMESITE"]) == (False, "Lax")
    finally:
        get_router(plain).dispose()


def test_sign_out_ends_the_session(alice):
    token = alice.page_token("/agent")

    assert alice.client.post("/logout", data={"csrf_token": token}).status_code == 302
    assert alice.get("/agent").status_code == 302


def test_a_password_change_signs_out_the_users_other_sessions(app, alice):
    with app.app_context():
        set_password("alice", "a brand new password")

    assert alice.get("/agent").status_code == 302
    again = Browser(app)
    assert again.login("alice", "a brand new password").status_code == 302


def test_passwords_are_stored_as_scrypt_hashes(app):
    from callcenter.database import get_router
    from callcenter.web.models import WebUser

    with get_router(app).read() as session:
        user = session.query(WebUser).filter_by(username="alice").one()
    assert user.password_hash.startswith("scrypt:") and PASSWORD not in user.password_hash


# -- accounts -----------------------------------------------------------------------------------------

def test_cli_creates_an_agent_for_a_named_worker_and_prompts_for_the_password(app, scenario):
    from callcenter.routing import workers

    dave = workers.create_worker(scenario.router, scenario.center.workspace_sid, friendly_name="Dave",
                                 attributes={"products": ["support"]})
    runner = app.test_cli_runner()

    result = runner.invoke(args=["users", "create", "dave", "--role", "agent", "--worker", "dave"],
                           input="s3cret-password\ns3cret-password\n")

    assert result.exit_code == 0, result.output
    assert f"Created agent dave (worker {dave.sid})" in result.output
    assert Browser(app).login("dave", "s3cret-password").headers["Location"] == "/agent"
    taken = runner.invoke(args=["users", "create", "dave2", "--worker", "Dave"], input="s3cret-password\n" * 2)
    assert taken.exit_code == 1 and f"Worker {dave.sid} already has a user" in taken.output


def test_a_worker_name_in_two_workspaces_is_refused_with_the_sids_to_choose_from(app, scenario):
    """Without a loaded contact center any workspace's worker will do: the demo's "Alice" and the SDK
    example's "alice" were refused with no way to tell them apart."""
    from callcenter.routing import workers, workspaces
    from callcenter.web.auth import UserError, find_worker

    other = workspaces.create_workspace(scenario.router, account_sid="AC" + "5" * 32,
                                        friendly_name="SDK example")
    mine = workers.create_worker(scenario.router, scenario.center.workspace_sid, friendly_name="Dave")
    theirs = workers.create_worker(scenario.router, other.sid, friendly_name="dave")
    with app.app_context(), pytest.raises(UserError) as refused:
        find_worker("Dave", None)
    assert f"{min(mine.sid, theirs.sid)} in workspace" in str(refused.value)
    assert "'SDK example'" in str(refused.value) and str(refused.value).endswith("give the sid")
    with app.app_context():
        assert find_worker("dave", scenario.center.workspace_sid).sid == mine.sid


@pytest.mark.parametrize("args, message", [
    (["users", "create", "dave", "--worker", "Dave"], "No worker named 'Dave'"),
    (["users", "create", "dave"], "An agent needs --worker"),
    (["users", "create", "alice", "--role", "supervisor"], "A user named 'alice' already exists"),
])
def test_cli_explains_why_a_user_cannot_be_created(app, args, message):
    result = app.test_cli_runner().invoke(args=args, input="s3cret-password\ns3cret-password\n")

    assert result.exit_code == 1
    assert message in result.output


def test_cli_sets_a_password(app):
    runner = app.test_cli_runner()

    result = runner.invoke(args=["users", "set-password", "bob"], input="another-password\nanother-password\n")

    assert result.exit_code == 0 and "Password of bob changed." in result.output
    assert Browser(app).login("bob", "another-password").status_code == 302
    missing = runner.invoke(args=["users", "set-password", "nobody"], input="another-password\nanother-password\n")
    assert missing.exit_code == 1 and "No user named 'nobody'" in missing.output


def test_short_passwords_are_refused(app):
    with app.app_context(), pytest.raises(UserError, match="at least 8 characters"):
        create_user("eve", "short", "supervisor", None)


def test_repeated_failed_sign_ins_are_slowed_down_for_that_user(browser):
    token = browser.page_token("/login")
    for _ in range(10):
        wrong = browser.client.post("/login", data={"username": "sam", "password": "guess", "csrf_token": token})
        assert wrong.status_code == 401
    blocked = browser.client.post("/login", data={"username": "sam", "password": PASSWORD, "csrf_token": token})
    assert blocked.status_code == 429 and b"Too many failed sign-ins" in blocked.data


@pytest.fixture
def three_tries(app):
    """Sign-ins limited after 3 failures, not 10: the same rule, a third of the (hashed) tries."""
    app.extensions["failed_sign_ins"] = FailedSignIns(limit=3)


def _fail_sign_ins(browser, count: int, *, forwarded_for=None, username=lambda i: f"user{i}") -> list[int]:
    token = browser.page_token("/login")
    statuses = []
    for i in range(count):
        headers = {"X-Forwarded-For": forwarded_for(i)} if forwarded_for else {}
        statuses.append(browser.client.post("/login", headers=headers, data={
            "username": username(i), "password": "Summer2026!", "csrf_token": token}).status_code)
    return statuses


def test_a_client_reaching_the_app_directly_cannot_pick_the_address_its_failures_count_under(browser, three_tries):
    """gunicorn -b 0.0.0.0:8000 with no proxy in front: X-Forwarded-For is the client's own say."""
    browser.client.environ_base["REMOTE_ADDR"] = "203.0.113.9"

    statuses = _fail_sign_ins(browser, 4, forwarded_for=lambda i: f"198.51.100.{i}")

    assert statuses == [401] * 3 + [429]


def test_behind_a_proxy_on_this_machine_failures_count_under_the_forwarded_client(browser, three_tries):
    """ngrok's agent or nginx on the same host (FORWARDED_ALLOW_IPS' default): one client's failures do not lock
    out the others, who all arrive from the proxy's address."""
    assert _fail_sign_ins(browser, 4, forwarded_for=lambda i: "198.51.100.7") == [401] * 3 + [429]

    other = browser.client.post("/login", headers={"X-Forwarded-For": "198.51.100.8"}, data={
        "username": "bob", "password": PASSWORD, "csrf_token": browser.page_token("/login")})
    assert other.status_code == 302


def test_a_proxy_on_a_unix_socket_is_believed_and_no_address_locks_nobody_else_out(browser, three_tries):
    """gunicorn -b unix:/run/cc.sock behind nginx: the peer has no address. Its headers were dropped, and every
    failure counted under the one empty address: a few wrong passwords by anyone made every sign-in a 429."""
    browser.client.environ_base["REMOTE_ADDR"] = ""
    assert _fail_sign_ins(browser, 4, forwarded_for=lambda i: "198.51.100.7") == [401] * 3 + [429]
    other = browser.client.post("/login", headers={"X-Forwarded-For": "198.51.100.8"}, data={
        "username": "bob", "password": PASSWORD, "csrf_token": browser.page_token("/login")})
    assert other.status_code == 302

    # With no proxy header either, the failures count per name only.
    direct = Browser(browser.app)
    direct.client.environ_base["REMOTE_ADDR"] = ""
    assert _fail_sign_ins(direct, 5, username=lambda i: f"nobody{i}") == [401] * 5


def test_a_trusted_proxy_elsewhere_is_named_in_forwarded_allow_ips(app, three_tries):
    browser = Browser(app)
    browser.client.environ_base["REMOTE_ADDR"] = "10.0.3.4"  # a load balancer on another host
    app.wsgi_app.allowed = (ipaddress.ip_network("10.0.0.0/8"),)  # FORWARDED_ALLOW_IPS=10.0.0.0/8

    assert _fail_sign_ins(browser, 5, forwarded_for=lambda i: f"198.51.100.{i}") == [401] * 5


def test_failed_sign_ins_of_names_nobody_tries_again_are_forgotten_and_long_names_cost_little():
    now = [1000.0]
    limiter = FailedSignIns(limit=10, window_seconds=300, monotonic=lambda: now[0])
    for i in range(40):
        limiter.failed(f"{i}-" + "x" * 100_000, f"198.51.100.{i}")  # no user name is over 64 characters

    assert len(limiter) == 80 and max(len(key) for key in limiter._failures) <= 2 + 65
    for i in range(9):  # names differing past their 65th character count as one: still no user's
        limiter.failed("0-" + "x" * 63 + f"y{i}", "192.0.2.1")
    assert not limiter.allowed("0-" + "x" * 63 + "z", "192.0.2.2")
    now[0] += 301
    limiter.failed("someone", "192.0.2.9")
    assert len(limiter) == 2


def test_names_over_64_characters_are_still_counted_per_name(browser, three_tries):
    long_name = "n" * 70
    assert _fail_sign_ins(browser, 4, forwarded_for=lambda i: f"198.51.100.{i}",
                          username=lambda i: long_name + str(i)) == [401] * 3 + [429]


# -- demo mode's sign-in -------------------------------------------------------------------------------

def test_demo_modes_supervisor_opens_nothing_outside_demo_mode(app):
    """Its password was printed by each demo start; README's next step runs the real thing on the same file."""
    from callcenter.simulator import demo

    with patch.dict(app.config, {"DEMO_MODE": True}):
        password = demo._supervisor(app)
        demo_browser = Browser(app)
        assert demo_browser.login("demo", password).status_code == 302
        assert demo_browser.get("/agent").status_code == 403  # signed in (as a supervisor)

    assert demo_browser.get("/agent").status_code == 302  # the demo run's sign-in, kept in its cookie
    assert Browser(app).login("demo", password).status_code == 401


def test_the_demo_name_is_not_given_to_a_user_outside_demo_mode(app):
    result = app.test_cli_runner().invoke(args=["users", "create", "demo", "--role", "supervisor"],
                                          input="s3cret-password\ns3cret-password\n")
    assert result.exit_code == 1 and "demo mode's" in result.output


# -- sessions on the server ---------------------------------------------------------------------------

def with_cookie(app, cookie: str) -> Browser:
    """A browser holding a copy of a session cookie (as a thief would)."""
    thief = Browser(app)
    thief.client.set_cookie("session", cookie)
    return thief


def test_a_copied_cookie_stops_working_when_its_owner_signs_out(scenario, app, alice):
    token = alice.page_token("/agent")
    stolen = alice.client.get_cookie("session").value  # with the page's CSRF token in it

    alice.client.post("/logout", data={"csrf_token": token})

    assert with_cookie(app, stolen).get("/agent").status_code == 302
    refused = with_cookie(app, stolen).post("/agent/activity",
                                            {"activity_sid": scenario.center.activity_sids["Available"]}, token=token)
    assert refused.status_code == 401 and refused.get_json()["code"] == 20003
    assert scenario.activity_of("Alice") == "Offline"


def test_sign_out_everywhere_ends_every_session_of_that_user_and_only_theirs(app, alice):
    laptop = Browser(app)
    laptop.login("alice")
    bob = Browser(app)
    bob.login("bob")

    assert 'action="/logout/everywhere"' in alice.get("/agent").get_data(as_text=True)

    response = alice.client.post("/logout/everywhere", data={"csrf_token": alice.page_token("/agent")},
                                 follow_redirects=True)

    assert "You are signed out everywhere (2 sessions ended)." in response.get_data(as_text=True)
    assert alice.get("/agent").status_code == 302 and laptop.get("/agent").status_code == 302
    assert bob.get("/agent").status_code == 200


def test_sign_out_everywhere_needs_the_csrf_token(alice):
    refused = alice.client.post("/logout/everywhere")

    assert refused.status_code == 400
    assert alice.get("/agent").status_code == 200


def test_a_supervisor_signs_an_agent_out_everywhere(scenario, app, alice, supervisor):
    bob = Browser(app)
    bob.login("bob")

    alice_sid = scenario.worker("Alice").sid
    assert f'action="/dashboard/agents/{alice_sid}/sign-out"' in supervisor.get("/dashboard").get_data(as_text=True)

    response = supervisor.post(f"/dashboard/agents/{alice_sid}/sign-out")

    assert response.status_code == 200
    assert response.get_json()["message"] == "Alice is signed out everywhere (1 session ended)."
    assert alice.get("/agent").status_code == 302
    assert bob.get("/agent").status_code == 200 and supervisor.get("/dashboard").status_code == 200


def test_signing_out_an_agent_without_a_sign_in_or_as_an_agent_is_refused(scenario, app, alice, supervisor):
    from callcenter.routing import workers

    dave = workers.create_worker(scenario.router, scenario.center.workspace_sid, friendly_name="Dave")
    bob = Browser(app)
    bob.login("bob")
    bob_sid = scenario.worker("Bob").sid

    nobody = supervisor.post(f"/dashboard/agents/{dave.sid}/sign-out")
    by_an_agent = alice.post(f"/dashboard/agents/{bob_sid}/sign-out")
    without_token = supervisor.post(f"/dashboard/agents/{bob_sid}/sign-out", token=None)
    unknown = supervisor.post("/dashboard/agents/WK" + "0" * 32 + "/sign-out")

    assert nobody.status_code == 404 and nobody.get_json() == {
        "code": 20404, "message": "Dave has no sign-in.", "more_info": "https://www.twilio.com/docs/errors/20404",
        "status": 404}
    assert by_an_agent.status_code == 403 and without_token.status_code == 400 and unknown.status_code == 404
    assert bob.get("/agent").status_code == 200  # nothing changed


def test_a_session_ends_after_its_lifetime_even_while_in_use(scenario, alice):
    for _ in range(11):
        scenario.clock.advance(hours=1)
        assert alice.get("/agent").status_code == 200
    scenario.clock.advance(minutes=59)
    assert alice.get("/agent").status_code == 200

    scenario.clock.advance(minutes=1)  # 12 hours after signing in
    expired = alice.get("/agent")

    assert expired.status_code == 302 and expired.headers["Location"].startswith("/login?next=/agent")
    assert "Your session has expired: sign in again." in alice.get(expired.headers["Location"]).get_data(as_text=True)
    assert alice.get("/agent/state.json", headers={"Accept": "application/json"}).status_code == 401


def test_a_session_ends_after_two_hours_without_a_request(scenario, alice):
    scenario.clock.advance(minutes=119)
    assert alice.get("/agent").status_code == 200  # the idle time starts again from here
    scenario.clock.advance(minutes=119)
    assert alice.get("/agent").status_code == 200

    scenario.clock.advance(minutes=120)

    assert alice.get("/agent").status_code == 302
    assert alice.get("/agent").status_code == 302  # and it stays ended


def test_session_lifetime_and_idle_timeout_come_from_configuration(scenario, app):
    app.config.update(SESSION_IDLE_MINUTES=5, SESSION_LIFETIME_HOURS=0.25)
    idle, busy = Browser(app), Browser(app)
    idle.login("alice")
    busy.login("bob")

    for _ in range(2):
        scenario.clock.advance(minutes=4)
        assert busy.get("/agent").status_code == 200
    scenario.clock.advance(minutes=4)
    assert idle.get("/agent").status_code == 302  # 12 minutes without a request
    assert busy.get("/agent").status_code == 200
    scenario.clock.advance(minutes=3)
    assert busy.get("/agent").status_code == 302  # 15 minutes after signing in


def test_signing_in_again_after_expiry_works_and_old_cookies_stay_dead(scenario, app, alice):
    stolen = alice.client.get_cookie("session").value
    scenario.clock.advance(hours=3)
    assert alice.get("/agent").status_code == 302

    assert alice.login("alice").status_code == 302

    assert alice.get("/agent").status_code == 200
    assert with_cookie(app, stolen).get("/agent").status_code == 302


def test_cli_signs_a_user_out_everywhere(app, alice):
    runner = app.test_cli_runner()

    result = runner.invoke(args=["users", "sign-out", "alice"])

    assert result.exit_code == 0 and "Signed alice out everywhere (1 session ended)." in result.output
    assert alice.get("/agent").status_code == 302
    missing = runner.invoke(args=["users", "sign-out", "nobody"])
    assert missing.exit_code == 1 and "No user named 'nobody'" in missing.output
