"""The pages in a real browser (Playwright driving Debian's Chromium, headless) against the app over real HTTP:
live updates arrive without a reload, no JavaScript error reaches the console, and a phone-sized screen
needs no horizontal scrolling.

Skipped, with the reason, where Chromium or Playwright is missing (`.ci/run` installs Chromium).
"""

from __future__ import annotations

import os
import re
import socket
import threading

import pytest
from werkzeug.serving import make_server

from callcenter.contact_center import current
from callcenter.database import get_router
from callcenter.routing import tasks, workers
from callcenter.voice.models import Call
from callcenter.web.auth import create_user, find_worker
from callcenter.web.live import hub_of
from tests.support import contact_center_app
from tests.web.conftest import PASSWORD

CHROMIUM = os.environ.get("CALLCENTER_TEST_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
CALLER = "+14155550123"

sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed")
if not os.path.exists(CHROMIUM):
    pytest.skip(f"Chromium not found at {CHROMIUM} (apt-get install -y chromium)", allow_module_level=True)
expect = sync_api.expect


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def server(sqlite_url):
    """The app on a free port of 127.0.0.1, served by werkzeug in a thread, with the real clock."""
    app = contact_center_app(sqlite_url, LIVE_HEARTBEAT_SECONDS=1)
    with app.app_context():
        workspace = current(app).workspace_sid
        create_user("alice", PASSWORD, "agent", find_worker("Alice", workspace).sid)
        create_user("sam", PASSWORD, "supervisor", None)
    http = make_server("127.0.0.1", free_port(), app, threaded=True)
    thread = threading.Thread(target=http.serve_forever, name="test-http", daemon=True)
    thread.start()
    yield app, f"http://127.0.0.1:{http.server_port}"
    http.shutdown()
    thread.join(10)
    hub_of(app).stop()
    get_router(app).dispose()


@pytest.fixture
def browser():
    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


class Page:
    """A browser tab that records every JavaScript error and console error it sees."""

    def __init__(self, context) -> None:
        self.page = context.new_page()
        self.errors: list[str] = []
        self.page.on("console", lambda message: message.type == "error" and self.errors.append(message.text))
        self.page.on("pageerror", lambda error: self.errors.append(str(error)))

    def sign_in(self, base: str, username: str) -> None:
        self.page.goto(f"{base}/login")
        self.page.fill("input[name=username]", username)
        self.page.fill("input[name=password]", PASSWORD)
        self.page.click("button[type=submit]")
        # The live stream is open once the page says so: later changes reach it without a reload.
        expect(self.page.locator("#live-status")).to_have_text("Live")
        if username == "sam":
            # ... and the snapshot its opening asked for is shown: no fetch is in flight, no redraw pending.
            expect(self.page.locator("#dashboard")).to_have_attribute("data-snapshot-at", re.compile(r"\d{4}-"))


def signed_in(browser, server, username: str, *, fake_clock: bool = False, **context) -> Page:
    """A new tab signed in as `username`, its live stream open; with `fake_clock`, the page's timers and Date run
    on a clock the test moves (`tab.page.clock`)."""
    tab = Page(browser.new_context(**context))
    if fake_clock:
        tab.page.clock.install()
    tab.sign_in(server[1], username)
    return tab


def create_call_task(app, product: str):
    center = current(app)
    return tasks.create_task(get_router(app), center.workspace_sid, workflow_sid=center.workflow_sid,
                             task_channel="voice", attributes={"from": CALLER, "selected_product": product})


def test_agent_goes_available_sees_an_offer_live_accepts_it_and_wraps_up(server, browser):
    app = server[0]
    tab = signed_in(browser, server, "alice")
    page = tab.page
    expect(page.locator("#activity-name")).to_have_text("Offline")

    page.get_by_role("button", name="Available", exact=True).click()
    expect(page.locator("#activity-name")).to_have_text("Available")

    create_call_task(app, "sales")  # routed to Alice, the only available seller
    expect(page.locator("#offer")).to_be_visible()
    expect(page.locator("#offer-caller")).to_have_text(CALLER)
    expect(page.locator("#offer-choices")).to_contain_text("sales")
    expect(page.locator("#offer-countdown")).to_have_text(re.compile(r"0:[0-3]\d"))

    page.locator("#offer-buttons").get_by_role("button", name="Accept").click()
    expect(page.locator("#offer")).to_be_hidden()
    expect(page.locator("#task-heading")).to_have_text("On a call")
    expect(page.locator("#activity-name")).to_have_text("On a call")

    asked = []
    page.once("dialog", lambda dialog: (asked.append(dialog.message), dialog.dismiss()))
    page.get_by_role("button", name="Wrap up").click()  # it ends the call: asked first; "Cancel" keeps it
    expect(page.locator("#task-heading")).to_have_text("On a call")
    assert asked == [f"Wrap up ends the call with {CALLER} now. End the call?"]
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Wrap up").click()
    expect(page.locator("#task-heading")).to_have_text("Wrapping up")
    expect(page.locator("#activity-name")).to_have_text("Wrap-up")

    page.get_by_role("button", name="Complete").click()
    expect(page.locator("#task")).to_be_hidden()
    expect(page.locator("#activity-name")).to_have_text("Available")
    assert tab.errors == []


def test_supervisor_watches_the_waiting_count_change_live(server, browser):
    app = server[0]
    tab = signed_in(browser, server, "sam")
    page = tab.page
    waiting = page.locator("#total-waiting")
    support_waiting = page.locator("#queue-rows tr", has_text="Support").locator("td.waiting")
    expect(waiting).to_have_text("0")

    task = create_call_task(app, "support")  # nobody is available: the caller waits
    expect(waiting).to_have_text("1")
    expect(support_waiting).to_have_text("1")

    tasks.update_task(get_router(app), current(app).workspace_sid, task.sid, assignment_status="canceled")
    expect(waiting).to_have_text("0")
    assert tab.errors == []


def test_a_missed_call_reaches_the_open_dashboard_with_its_local_time(server, browser):
    app = server[0]
    tab = signed_in(browser, server, "sam")
    expect(tab.page.locator("#missed-calls")).to_have_text("No missed calls today.")

    router, workspace = get_router(app), current(app).workspace_sid
    moment = router.clock.now().replace(microsecond=0)
    with router.transaction(None) as tx:
        tx.session.add(Call(call_sid="CA" + "7" * 32, workspace_sid=workspace, from_number=CALLER, outcome="missed",
                            date_created=moment, recording_url="https://api.twilio.com/RE7", recording_duration=9))
    hub_of(app).publish_call_change(workspace, "CA" + "7" * 32)  # as the voicemail webhook does

    missed = tab.page.locator("#missed-calls li")
    expect(missed).to_contain_text(CALLER)
    expect(missed.locator("time")).to_have_text(f"{moment:%H:%M} UTC")  # the contact center's zone: UTC here
    expect(missed.locator("time")).to_have_attribute("datetime", moment.isoformat() + "Z")
    expect(missed.get_by_role("link")).to_have_text("Voicemail (9 s)")
    assert tab.errors == []


@pytest.mark.parametrize("username, path", [("alice", "/agent"), ("sam", "/dashboard")])
def test_pages_fit_a_phone_screen_without_horizontal_scrolling(server, browser, username, path):
    create_call_task(server[0], "support")
    tab = signed_in(browser, server, username, **PHONE)

    assert tab.page.url.endswith(path)
    assert horizontal_overflow(tab) <= 0
    assert tab.errors == []


PHONE = {"viewport": {"width": 360, "height": 740}, "device_scale_factor": 2, "is_mobile": True, "has_touch": True}


def horizontal_overflow(tab: Page) -> int:
    return tab.page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")


def test_dashboard_durations_count_up_between_snapshots(server, browser):
    app = server[0]
    create_call_task(app, "support")  # nobody is available: the caller waits
    tab = signed_in(browser, server, "sam", fake_clock=True)  # no fetch is in flight when time jumps
    waited = tab.page.locator("#waiting-calls li [data-seconds]")
    expect(waited).to_have_text(re.compile(r"0:0\d"))
    longest = tab.page.locator("#queue-rows tr", has_text="Support").locator("[data-seconds]")

    tab.page.clock.run_for(90_000)  # a minute and a half, with no event from the server

    expect(waited).to_have_text(re.compile(r"1:3\d"))
    expect(longest).to_have_text(re.compile(r"1:3\d"))
    assert tab.errors == []


def test_a_failed_snapshot_fetch_says_the_page_is_out_of_date_and_is_retried(server, browser):
    app = server[0]
    tab = signed_in(browser, server, "sam", fake_clock=True)
    page = tab.page
    failures = []

    def once_unavailable(route):
        if not failures:
            failures.append(route.request.url)
            route.fulfill(status=503, body="deploying")
        else:
            route.continue_()

    page.route("**/dashboard/state.json", once_unavailable)
    create_call_task(app, "support")  # the notice arrives; its snapshot fetch fails

    expect(page.locator("#live-status")).to_contain_text("Out of date")
    expect(page.locator("#total-waiting")).to_have_text("0")
    page.clock.run_for(2_000)  # the retry
    expect(page.locator("#total-waiting")).to_have_text("1")
    expect(page.locator("#live-status")).to_have_text("Live")
    assert len(failures) == 1


def test_the_agent_list_stays_current_while_a_supervisor_is_choosing_an_activity(server, browser):
    app = server[0]
    tab = signed_in(browser, server, "sam")
    page = tab.page
    row = page.locator("#agent-rows li", has_text="Alice")
    choice = row.get_by_label("Activity of Alice")
    choice.select_option(label="Break")  # chosen, not yet set: the focus stays on it, as after a click
    choice.focus()

    center = current(app)
    with app.app_context():
        alice = find_worker("Alice", center.workspace_sid).sid
    activity = center.activity_for("available")
    workers.update_worker(get_router(app), center.workspace_sid, alice, activity_sid=activity)

    expect(row.locator(".pill")).to_have_text("Available")
    break_sid = page.locator("#agent-rows li", has_text="Alice").locator("option", has_text="Break").get_attribute("value")
    expect(row.get_by_label("Activity of Alice")).to_have_value(break_sid)  # the choice is kept
    assert tab.errors == []


def test_a_long_name_without_spaces_wraps_on_a_phone(server, browser):
    app = server[0]
    center = current(app)
    name = "Maximilianaalexandrinakonstantinopouloswolfeschlegelsteinhause"  # 62 characters, the API allows 64
    assert len(name) == 62
    worker = workers.create_worker(get_router(app), center.workspace_sid, friendly_name=name,
                                   attributes='{"products": ["support"]}')
    with app.app_context():
        create_user("max", PASSWORD, "agent", worker.sid)
    for username in ("max", "sam"):
        tab = signed_in(browser, server, username, **PHONE)
        assert horizontal_overflow(tab) <= 0, username
        assert tab.errors == []
        tab.page.context.close()


def test_a_keyboard_user_keeps_their_place_after_setting_an_agents_activity(server, browser):
    tab = signed_in(browser, server, "sam")
    page = tab.page
    row = page.locator("#agent-rows li", has_text="Bob")
    row.get_by_label("Activity of Bob").select_option(label="Break")
    row.get_by_role("button", name="Set").focus()
    page.keyboard.press("Enter")

    expect(row.locator(".pill")).to_have_text("Break")
    expect(row.get_by_role("button", name="Set")).to_be_focused()
    page.keyboard.press("Tab")  # on to the next control of Bob's row, not back to the top of the page
    assert page.evaluate("document.activeElement.textContent") == "Edit"
    assert tab.errors == []


def test_the_agent_console_keeps_the_focus_in_place_when_a_live_update_redraws_it(server, browser):
    app = server[0]
    tab = signed_in(browser, server, "alice")
    page = tab.page
    page.locator("#activities").get_by_role("button", name="Break").focus()

    create_call_task(app, "sales")  # Alice is Offline: her "callers waiting" count changes, and the page redraws
    expect(page.locator("#waiting")).to_have_text("1")

    expect(page.locator("#activities").get_by_role("button", name="Break")).to_be_focused()
    page.keyboard.press("Enter")  # a button chosen from the keyboard: its button is now disabled, the focus stays near
    expect(page.locator("#activity-name")).to_have_text("Break")
    expect(page.locator("#activities :focus")).to_have_count(1)
    assert tab.errors == []


def test_a_page_past_the_users_share_of_live_streams_says_why_it_is_not_live(server, browser):
    app = server[0]
    app.config["LIVE_STREAMS_PER_USER"] = 1
    first = signed_in(browser, server, "alice")  # holds alice's one stream
    second = Page(first.page.context)
    second.page.goto(first.page.url)

    expect(second.page.locator("#live-status")).to_contain_text("Not live: 1 page is already open")
    second.page.close()
    assert first.errors == []


def _press(page, locator) -> None:
    """Mouse down on `locator`, not up yet."""
    box = locator.bounding_box()
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.mouse.down()


def test_accept_pressed_as_a_live_update_redraws_the_console_takes_the_call(server, browser):
    """Each live notice rebuilt every button: a press whose mouse-up landed on Accept's replacement made no click,
    and the agent's Accept did nothing. The offer's buttons now stay while the offer does."""
    app = server[0]
    app.config["LIVE_QUEUE_NOTICE_SECONDS"] = 0  # the other caller reaches the page at once
    tab = signed_in(browser, server, "alice")
    page = tab.page
    page.get_by_role("button", name="Available", exact=True).click()
    expect(page.locator("#activity-name")).to_have_text("Available")
    create_call_task(app, "sales")
    accept = page.locator("#offer-buttons").get_by_role("button", name="Accept")
    expect(accept).to_be_visible()

    _press(page, accept)
    with page.expect_response(lambda response: "/agent/state.json" in response.url):
        create_call_task(app, "sales")  # another caller in Alice's queue: the console hears of it and re-fetches
    page.mouse.up()

    expect(page.locator("#offer")).to_be_hidden()
    expect(page.locator("#task-heading")).to_have_text("On a call")
    expect(page.locator("#waiting")).to_have_text("1")  # the update held back during the press is shown after it
    assert tab.errors == []


def test_a_dashboard_link_pressed_as_a_call_arrives_opens(server, browser):
    """The dashboard redraws its lists on every event of the workspace: a click on "Why still waiting?" was lost
    whenever a redraw fell between mouse-down and mouse-up. Redraws wait for the press to end."""
    app = server[0]
    create_call_task(app, "support")  # nobody is available: the caller waits
    tab = signed_in(browser, server, "sam")
    page = tab.page
    why = page.locator("#waiting-calls li").first.get_by_role("link", name="Why still waiting?")
    expect(why).to_be_visible()

    _press(page, why)
    with page.expect_response(lambda response: "/dashboard/state.json" in response.url):
        create_call_task(app, "support")
    page.mouse.up()

    expect(page).to_have_url(re.compile(r"/dashboard/tasks/WT\w+/explanation$"))
    assert tab.errors == []


def test_the_agent_is_told_when_someone_else_changes_their_activity(server, browser):
    """A missed call or a supervisor took the agent offline silently: a screen reader's user was not told that no
    more calls would come. The page's status line (role=status) now says so; the agent's own changes keep their
    own message."""
    app = server[0]
    tab = signed_in(browser, server, "alice")
    page = tab.page
    page.get_by_role("button", name="Available", exact=True).click()
    expect(page.locator("#message")).to_have_text("You are now Available.")

    center = current(app)
    with app.app_context():
        alice = find_worker("Alice", center.workspace_sid).sid
    workers.update_worker(get_router(app), center.workspace_sid, alice, activity_sid=center.activity_for("offline"))

    expect(page.locator("#activity-name")).to_have_text("Offline")
    expect(page.locator("#message")).to_have_text(
        "You are now Offline: no calls come to you until you choose an available activity.")
    assert page.locator("#message").get_attribute("role") == "status"
    # The call flow's own activities end by themselves: said, without advice to choose another.
    workers.update_worker(get_router(app), center.workspace_sid, alice, activity_sid=center.activity_for("busy"))
    expect(page.locator("#message")).to_have_text("You are now On a call.")


def test_an_offer_is_announced_once_and_its_countdown_is_not_read_out_every_second(server, browser):
    app = server[0]
    tab = signed_in(browser, server, "alice", fake_clock=True)
    page = tab.page
    page.get_by_role("button", name="Available", exact=True).click()
    expect(page.locator("#activity-name")).to_have_text("Available")
    create_call_task(app, "sales")
    countdown = page.locator("#offer-countdown")
    expect(countdown).to_have_text(re.compile(r"0:[0-3]\d"))
    before = countdown.text_content()
    page.clock.run_for(2_000)
    expect(countdown).not_to_have_text(before)  # it ticks...

    live = countdown.evaluate("el => { const r = el.closest('[aria-live]'); return r && r.getAttribute('aria-live') }")
    assert live is None  # ...outside any live region
    announcement = page.locator("#offer-announcement")
    assert announcement.get_attribute("aria-live") == "assertive"
    expect(announcement).to_have_text(f"Incoming call from {CALLER}.")


def test_signing_an_agent_out_everywhere_is_asked_first(server, browser):
    tab = signed_in(browser, server, "sam")
    page = tab.page
    asked = []
    page.once("dialog", lambda dialog: (asked.append(dialog.message), dialog.dismiss()))
    page.get_by_role("button", name="Sign Alice out everywhere").click()
    expect(page.locator("#message")).to_be_hidden()
    assert asked == ["Sign Alice out of every browser and phone? They must sign in again to take calls on the console."]
