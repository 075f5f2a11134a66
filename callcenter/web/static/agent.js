// The agent console: renders the agent's snapshot and counts down the offer's time to answer.
"use strict";
(function () {
  const CC = window.CallCenter;
  const root = document.getElementById("agent");
  const url = function (name, sid) { return root.dataset[name].replace("__SID__", encodeURIComponent(sid)); };
  let deadline = null, activityStart = null;

  function choices(list, values) {
    list.replaceChildren();
    Object.entries(values || {}).forEach(function ([key, value]) {
      list.appendChild(CC.el("dt", { text: key }));
      list.appendChild(CC.el("dd", { text: typeof value === "string" ? value : JSON.stringify(value) }));
    });
  }

  function render(state) {
    if (!state.worker) { window.location.reload(); return; }
    const worker = state.worker;
    const name = document.getElementById("activity-name");
    name.textContent = worker.activity;
    name.className = worker.available ? "available" : "unavailable";
    activityStart = Date.now() - (worker.seconds_in_activity || 0) * 1000;
    document.getElementById("waiting").textContent = state.waiting_in_my_queues;

    const activities = document.getElementById("activities");
    activities.replaceChildren();
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

    const offer = state.reservation;
    const offerBox = document.getElementById("offer");
    offerBox.hidden = !offer;
    const offerButtons = document.getElementById("offer-buttons");
    offerButtons.replaceChildren();
    if (offer) {
      document.getElementById("offer-caller").textContent = offer.caller || "Unknown caller";
      document.getElementById("offer-queue").textContent = offer.queue || "–";
      choices(document.getElementById("offer-choices"), offer.choices);
      deadline = offer.seconds_left === null ? null : Date.now() + offer.seconds_left * 1000;
      offerButtons.appendChild(CC.actionForm(url("acceptUrl", offer.reservation_sid), "Accept", "primary"));
      offerButtons.appendChild(CC.actionForm(url("rejectUrl", offer.reservation_sid), "Reject", "danger"));
    } else {
      deadline = null;
    }

    const task = state.task;
    const taskBox = document.getElementById("task");
    taskBox.hidden = !task;
    const taskButtons = document.getElementById("task-buttons");
    taskButtons.replaceChildren();
    if (task) {
      document.getElementById("task-heading").textContent = task.status === "wrapping" ? "Wrapping up" : "On a call";
      document.getElementById("task-caller").textContent = task.caller || "Unknown caller";
      choices(document.getElementById("task-choices"), task.choices);
      if (task.status === "assigned") taskButtons.appendChild(CC.actionForm(url("wrapUrl", task.sid), "Wrap up"));
      taskButtons.appendChild(CC.actionForm(url("completeUrl", task.sid), "Complete", "primary"));
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
  const left = document.getElementById("offer-countdown").dataset.seconds;
  deadline = left === "" || left === undefined ? null : Date.now() + Number(left) * 1000;
  setInterval(tick, 1000);
  CC.interceptForms(root, render);
  CC.follow(root.dataset.stateUrl, root.dataset.liveUrl, render);
})();
