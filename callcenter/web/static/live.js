// Shared by the console and the dashboard: posting forms with the CSRF token, and live re-fetching.
"use strict";
(function () {
  const csrf = document.querySelector('meta[name="csrf-token"]').content;

  function showMessage(text, isError) {
    const box = document.getElementById("message");
    if (!box) return;
    box.textContent = text || "";
    box.hidden = !text;
    box.classList.toggle("error", Boolean(isError));
  }

  // POST a form by fetch; resolves with the JSON the server answers (the new snapshot), rejects with its message.
  async function post(form) {
    const response = await fetch(form.action, {
      method: "POST",
      body: new FormData(form),
      headers: { "Accept": "application/json", "X-CSRFToken": csrf },
      credentials: "same-origin",
    });
    let body = null;
    try { body = await response.json(); } catch (err) { body = null; }
    if (!response.ok) {
      throw new Error((body && body.message) || ("The server answered " + response.status));
    }
    return body;
  }

  // A press (mouse down, then up) on a button or link that a redraw replaces in between makes no click: the
  // agent's Accept, a supervisor's "Why still waiting?" did nothing. While a pointer is down, or Space is held on
  // a control, redraws wait; the latest runs once the press is over (after its click), or after 5 s should the
  // release never be seen.
  let pressed = false, pendingRedraw = null, pressTimer = null;
  function pressStarted() {
    pressed = true;
    clearTimeout(pressTimer);
    pressTimer = setTimeout(pressEnded, 5000);
  }
  function pressEnded() {
    if (!pressed) return;
    pressed = false;
    clearTimeout(pressTimer);
    setTimeout(function () {  // a task later: the press's click (and submit) has been dispatched
      if (pressed || !pendingRedraw) return;  // pressed again meanwhile: its release redraws
      const redraw = pendingRedraw;
      pendingRedraw = null;
      redraw();
    }, 0);
  }
  document.addEventListener("pointerdown", pressStarted, true);
  document.addEventListener("pointerup", pressEnded, true);
  document.addEventListener("pointercancel", pressEnded, true);
  document.addEventListener("keydown", function (event) {
    if (event.key === " " && event.target.closest && event.target.closest("button")) pressStarted();
  }, true);
  document.addEventListener("keyup", function (event) { if (event.key === " ") pressEnded(); }, true);

  function afterPress(render) {
    return function (state) {
      if (pressed) { pendingRedraw = function () { render(state); }; return; }
      render(state);
    };
  }

  // A redraw replaces the page's forms and buttons: give the focus back to the same control (the same label in
  // the same row), so that a keyboard user goes on where they were.
  function keepingFocus(render) {
    return afterPress(function (state) {
      const active = document.activeElement;
      if (!active || active === document.body) { render(state); return; }
      const row = active.closest("[data-sid]");
      const box = active.closest("[id]");
      const label = active.getAttribute("aria-label") || active.textContent.trim();
      render(state);
      if (document.contains(active)) return;
      const scope = (row && document.querySelector('[data-sid="' + CSS.escape(row.dataset.sid) + '"]')) ||
        (box && document.getElementById(box.id)) || document;
      const usable = function (node) { return !node.disabled && !node.hidden && node.type !== "hidden"; };
      // The same control if it is still there and usable (a chosen activity's button is disabled), else the
      // first usable control of its row or box.
      const match = Array.from(scope.querySelectorAll(active.tagName)).find(function (node) {
        return (node.getAttribute("aria-label") || node.textContent.trim()) === label && usable(node);
      }) || Array.from(scope.querySelectorAll("button, select, a[href], input")).find(usable);
      if (match) match.focus();
    });
  }

  // Posts in flight, and posts answered so far: a snapshot fetched meanwhile may be older than a post's answer.
  let posting = 0, answered = 0;
  function busy() { return posting > 0; }

  // Forms inside `root` go through fetch; `render` gets the snapshot each answers with.
  function interceptForms(root, render) {
    render = keepingFocus(render);
    root.addEventListener("submit", async function (event) {
      const form = event.target.closest("form.action");
      if (!form) return;
      event.preventDefault();
      // What cannot be undone (hanging up on a caller, signing someone out) is asked first.
      if (form.dataset.confirm && !form.dataset.busy && !window.confirm(form.dataset.confirm)) return;
      // Busy until the answer: a second press does nothing. aria-disabled, not disabled: disabling the focused
      // button would drop the keyboard focus, and a live update redrawing the page meanwhile could not give it back.
      if (form.dataset.busy) return;
      form.dataset.busy = "1";
      const buttons = form.querySelectorAll("button");
      buttons.forEach(function (b) { b.setAttribute("aria-disabled", "true"); });
      const done = function () {
        delete form.dataset.busy;
        buttons.forEach(function (b) { b.removeAttribute("aria-disabled"); });
      };
      posting += 1;
      try {
        const state = await post(form);
        done();
        answered += 1;
        if (state) { render(state); showMessage(state.message, false); }
      } catch (err) {
        done();
        showMessage(err.message, true);
      } finally {
        posting -= 1;
      }
    });
  }

  // Fetch the snapshot now, and again whenever the server says something changed (coalescing bursts).
  function follow(stateUrl, liveUrl, render) {
    render = keepingFocus(render);
    const status = document.getElementById("live-status");
    let running = false, again = false, stale = false, retry = null, retryDelay = 1000;
    let source = null, delay = 1000;
    function setStatus(text, isError) {
      if (!status) return;
      status.textContent = text;
      status.classList.toggle("error", Boolean(isError));
    }
    async function refresh() {
      if (running) { again = true; return; }
      running = true;
      clearTimeout(retry);
      try {
        do {
          again = false;
          const before = answered;
          const response = await fetch(stateUrl, { headers: { "Accept": "application/json" }, credentials: "same-origin" });
          if (response.status === 401) { window.location.reload(); return; }
          if (!response.ok) throw new Error("The server answered " + response.status);
          const state = await response.json();
          // A post answered meanwhile drew a newer state: this one may be from before it. Fetch again.
          if (answered !== before) { again = true; continue; }
          render(state);
        } while (again);
        if (stale) { stale = false; retryDelay = 1000; setStatus(source && source.readyState === EventSource.OPEN ? "Live" : "Reconnecting…"); }
      } catch (err) {
        // The page now shows old figures: say so, and fetch again, waiting longer each time, until it works.
        stale = true;
        setStatus("Out of date: the server did not answer; trying again…", true);
        retry = setTimeout(refresh, retryDelay);
        retryDelay = Math.min(retryDelay * 2, 30000);
      } finally {
        running = false;
      }
    }
    // EventSource retries by itself after a dropped connection, but gives up for good after an HTTP
    // error (a 401 once signed out, a 502 during a deploy): then we open a new one, waiting longer each time.
    function connect() {
      source = new EventSource(liveUrl);
      source.addEventListener("open", function () { delay = 1000; if (!stale) setStatus("Live"); refresh(); });
      source.addEventListener("change", refresh);
      source.addEventListener("error", function () {
        if (!stale) setStatus("Reconnecting…");
        if (source.readyState === EventSource.CLOSED) {
          refresh();  // signed out: this reloads to the sign-in page
          setTimeout(connect, delay);
          delay = Math.min(delay * 2, 60000);
          // An EventSource is not told why it was refused: ask (a HEAD takes no place among the user's streams).
          fetch(liveUrl, { method: "HEAD", credentials: "same-origin" }).then(function (response) {
            if (response.status === 429 && !stale) {
              const limit = response.headers.get("X-Live-Streams-Limit");
              setStatus("Not live: " + limit + (limit === "1" ? " page is" : " pages are") + " already open for " +
                "your sign-in. Close one; this page tries again by itself.", true);
            }
          }).catch(function () {});
        }
      });
    }
    connect();
    window.addEventListener("beforeunload", function () { if (source) source.close(); });
    return refresh;
  }

  function duration(seconds) {
    if (seconds === null || seconds === undefined || seconds === "") return "–";
    seconds = Math.max(0, Math.floor(Number(seconds)));
    const h = Math.floor(seconds / 3600), m = Math.floor((seconds % 3600) / 60), s = seconds % 60;
    const pad = function (n) { return String(n).padStart(2, "0"); };
    return h ? h + ":" + pad(m) + ":" + pad(s) : m + ":" + pad(s);
  }

  // A small element builder that only ever sets text (never HTML) from data.
  function el(tag, attrs, children) {
    const node = document.createElement(tag);
    Object.entries(attrs || {}).forEach(function ([key, value]) {
      if (value === null || value === undefined || value === false) return;
      if (key === "text") node.textContent = value;
      else if (key === "className") node.className = value;
      else node.setAttribute(key, value === true ? "" : value);
    });
    (children || []).forEach(function (child) { if (child) node.appendChild(child); });
    return node;
  }

  function actionForm(action, label, className, fields, confirm) {
    const inputs = [el("input", { type: "hidden", name: "csrf_token", value: csrf })];
    Object.entries(fields || {}).forEach(function ([name, value]) {
      inputs.push(el("input", { type: "hidden", name: name, value: value }));
    });
    inputs.push(el("button", { type: "submit", className: className || null, text: label }));
    return el("form", { method: "post", action: action, className: "action", "data-confirm": confirm || null }, inputs);
  }

  window.CallCenter = { post, interceptForms, follow, duration, el, actionForm, showMessage, busy, csrf };
})();
