// The agent console: renders the agent's snapshot and counts down the offer's time to answer.
"use strict";
(function () {
  const CC = window.CallCenter;
  const root = document.getElementById("agent");
  const url = function (name, sid) { return root.dataset[name].replace("__SID__", encodeURIComponent(sid)); };
  let deadline = null, activityStart = null, offered = null;
  let activityShown = document.getElementById("activity-name").textContent;

  function choices(list, values) {
    list.replaceChildren();
    Object.entries(values || {}).forEach(function ([key, value]) {
      list.appendChild(CC.el("dt", { text: key }));
      list.appendChild(CC.el("dd", { text: typeof value === "string" ? value : JSON.stringify(value) }));
    });
  }

  // Empty `box` for new buttons when its key changed (true), or leave its buttons be (false).
  function rebuild(box, key) {
    if (box.dataset.key === key) return false;
    box.dataset.key = key;
    box.replaceChildren();
    return true;
  }

  function render(state) {
    if (!state.worker) { window.location.reload(); return; }
    const worker = state.worker;
    const name = document.getElementById("activity-name");
    if (worker.activity !== activityShown && !state.message && !CC.busy()) {
      // Changed by someone else (a missed call, a supervisor, the call flow): the agent must hear of it, and a
      // screen reader's user sees no colour change. Their own changes say so in their answer's message (one
      // seen first through the live stream, while the post is on its way, waits for that message).
      // The call flow's own activities (on a call, wrap-up) end by themselves: no advice for those.
      const choosable = state.activities.some(function (activity) { return activity.name === worker.activity; });
      CC.showMessage("You are now " + worker.activity + (worker.available || !choosable ? "." :
        ": no calls come to you until you choose an available activity."), false);
    }
    activityShown = worker.activity;
    name.textContent = worker.activity;
    name.className = worker.available ? "available" : "unavailable";
    activityStart = Date.now() - (worker.seconds_in_activity || 0) * 1000;
    document.getElementById("waiting").textContent = state.waiting_in_my_queues;

    // Buttons are rebuilt only when what they do changes: a button replaced under a press makes no click (the
    // agent pressed Accept as another caller's notice redrew the page, and nothing happened).
    const activities = document.getElementById("activities");
    if (rebuild(activities, JSON.stringify(state.activities))) {
      state.activities.forEach(function (activity) {
        const form = CC.actionForm(root.dataset.activityUrl, activity.name,
          (activity.current ? "current" : "") + (activity.available ? " go" : ""), { activity_sid: activity.sid });
        if (activity.current) {
          const button = form.querySelector("button");
          button.disabled = true;
          button.setAttribute("aria-pressed", "true");
        }
        activities.appendChild(form);
      });
    }

    const offer = state.reservation;
    document.getElementById("offer").hidden = !offer;
    const announcement = document.getElementById("offer-announcement");
    if (offer && offered !== offer.reservation_sid) {
      announcement.textContent = "Incoming call from " + (offer.caller || "an unknown caller") + ".";
    } else if (!offer) {
      announcement.textContent = "";
    }
    offered = offer ? offer.reservation_sid : null;
    const offerButtons = document.getElementById("offer-buttons");
    if (offer) {
      document.getElementById("offer-caller").textContent = offer.caller || "Unknown caller";
      document.getElementById("offer-queue").textContent = offer.queue || "–";
      choices(document.getElementById("offer-choices"), offer.choices);
      deadline = offer.seconds_left === null ? null : Date.now() + offer.seconds_left * 1000;
      if (rebuild(offerButtons, offer.reservation_sid)) {
        offerButtons.appendChild(CC.actionForm(url("acceptUrl", offer.reservation_sid), "Accept", "primary"));
        offerButtons.appendChild(CC.actionForm(url("rejectUrl", offer.reservation_sid), "Reject", "danger"));
      }
    } else {
      deadline = null;
      rebuild(offerButtons, "");
    }

    const task = state.task;
    document.getElementById("task").hidden = !task;
    const taskButtons = document.getElementById("task-buttons");
    if (task) {
      document.getElementById("task-heading").textContent = task.status === "wrapping" ? "Wrapping up" : "On a call";
      document.getElementById("task-caller").textContent = task.caller || "Unknown caller";
      choices(document.getElementById("task-choices"), task.choices);
      if (rebuild(taskButtons, JSON.stringify([task.sid, task.status, task.caller]))) {
        if (task.status === "assigned") {
          // Both end the call with the caller: asked first. Wrap up, the usual way, is the primary one.
          const caller = task.caller || "the caller";
          taskButtons.appendChild(CC.actionForm(url("wrapUrl", task.sid), "Wrap up", "primary", {},
            "Wrap up ends the call with " + caller + " now. End the call?"));
          taskButtons.appendChild(CC.actionForm(url("completeUrl", task.sid), "Complete", "", {},
            "Complete ends the call with " + caller + " now, with no wrap-up. End the call?"));
        } else {
          taskButtons.appendChild(CC.actionForm(url("completeUrl", task.sid), "Complete", "primary"));
        }
      }
    } else {
      rebuild(taskButtons, "");
    }
    document.getElementById("idle").hidden = Boolean(offer || task);
    tick();
  }

  function tick() {
    const countdown = document.getElementById("offer-countdown");
    countdown.textContent = deadline === null ? "–" : CC.duration((deadline - Date.now()) / 1000);
    if (activityStart !== null) {
      document.getElementById("activity-time").textContent = CC.duration((Date.now() - activityStart) / 1000);
    }
  }

  const initial = document.getElementById("activity-time").dataset.seconds;
  activityStart = Date.now() - Number(initial || 0) * 1000;
  const shown = document.getElementById("offer-buttons").querySelector("form");
  offered = shown ? decodeURIComponent(shown.action.split("/").slice(-2)[0]) : null;
  const left = document.getElementById("offer-countdown").dataset.seconds;
  deadline = left === "" || left === undefined ? null : Date.now() + Number(left) * 1000;
  setInterval(tick, 1000);
  CC.interceptForms(root, render);
  CC.follow(root.dataset.stateUrl, root.dataset.liveUrl, render);
})();
