// The supervisor dashboard: renders the dashboard's snapshot on every live notice.
"use strict";
(function () {
  const CC = window.CallCenter;
  const root = document.getElementById("dashboard");
  const url = function (name, sid) { return root.dataset[name].replace("__SID__", encodeURIComponent(sid)); };
  const percent = function (value) { return value === null || value === undefined ? "–" : value + "%"; };
  const text = function (id, value) { document.getElementById(id).textContent = value; };

  // A duration that counts up between snapshots: `data-seconds` is its value when the snapshot was taken.
  let renderedAt = Date.now();
  const ticking = function (seconds, attrs) {
    return CC.el("span", Object.assign({ "data-seconds": seconds === null || seconds === undefined ? "" : String(seconds),
      text: CC.duration(seconds) }, attrs || {}));
  };
  function tick() {
    const elapsed = (Date.now() - renderedAt) / 1000;
    root.querySelectorAll("[data-seconds]").forEach(function (node) {
      if (node.dataset.seconds !== "") node.textContent = CC.duration(Number(node.dataset.seconds) + elapsed);
    });
  }

  function agentLine(agent) {
    return CC.el("div", { className: "agent-line" }, [
      CC.el("strong", { text: agent.name }),
      CC.el("span", { className: "pill " + (agent.available ? "available" : "unavailable"), text: agent.activity }),
      ticking(agent.seconds_in_activity, { className: "muted" }),
      agent.task ? CC.el("span", { className: "task", text: agent.task.status + " · " + (agent.task.caller || agent.task.sid) + (agent.task.queue ? " · " + agent.task.queue : "") }) : null,
    ]);
  }

  function render(state) {
    renderedAt = Date.now();
    root.dataset.snapshotAt = state.now;  // the server's time of the figures shown
    text("total-waiting", state.totals.waiting);
    text("total-answered", state.totals.answered);
    text("total-abandoned", state.totals.abandoned);
    text("total-missed", state.totals.missed);
    text("total-asa", CC.duration(state.totals.average_speed_of_answer));
    text("total-sl", percent(state.totals.service_level));

    document.getElementById("queue-rows").replaceChildren(...state.queues.map(function (queue) {
      const cells = [queue.waiting, null, queue.available_agents + " / " + queue.eligible_agents,
        queue.answered, queue.abandoned, queue.missed, CC.duration(queue.average_speed_of_answer),
        percent(queue.service_level)].map(function (value, index) {
        if (index === 1) return CC.el("td", { className: "num" }, [ticking(queue.longest_wait)]);
        return CC.el("td", { className: index === 0 ? "num waiting" : "num", text: String(value) });
      });
      return CC.el("tr", { "data-sid": queue.sid }, [CC.el("th", { scope: "row", text: queue.name }), ...cells,
        CC.el("td", {}, [CC.el("a", { href: url("editQueueUrl", queue.sid), text: "Edit" })])]);
    }));

    const waiting = document.getElementById("waiting-calls");
    if (!state.waiting_calls.length) {
      waiting.replaceChildren(CC.el("li", { className: "muted", text: "Nobody is waiting." }));
    } else {
      const rows = state.waiting_calls.map(function (call) {
        return CC.el("li", { "data-sid": call.sid }, [
          CC.el("span", { className: "caller", text: call.caller || call.sid }),
          CC.el("span", { className: "muted" }, [document.createTextNode(" "), ticking(call.waited),
            document.createTextNode((call.queue ? " · " + call.queue : "") + " · " +
              (call.status === "reserved" ? "ringing an agent" : "waiting") + " ")]),
          CC.el("a", { href: url("taskWhyUrl", call.sid), text: "Why still waiting?" }),
        ]);
      });
      const more = state.totals.waiting - state.waiting_calls.length;
      if (more > 0) {
        rows.push(CC.el("li", { className: "muted more", text: "… and " + more + " more (the " +
          state.waiting_calls.length + " waiting longest are shown)" }));
      }
      waiting.replaceChildren(...rows);
    }

    // The chart is drawn by the server (numbers only): it replaces the old one whole.
    document.getElementById("chart").innerHTML = state.chart_svg;

    const missed = document.getElementById("missed-calls");
    if (!state.missed_calls.length) {
      missed.replaceChildren(CC.el("li", { className: "muted", text: "No missed calls today." }));
    } else {
      missed.replaceChildren(...state.missed_calls.map(function (call) {
        const link = /^https?:\/\//.test(call.recording_url || "")
          ? CC.el("a", { href: url("voicemailUrl", call.call_sid), target: "_blank",
              text: "Voicemail" + (call.recording_duration ? " (" + call.recording_duration + " s)" : "") })
          : CC.el("span", { className: "muted", text: "no voicemail" });
        return CC.el("li", {}, [
          CC.el("span", { className: "caller", text: call.from || "unknown" }),
          CC.el("span", { className: "muted" }, [
            document.createTextNode(" "),
            CC.el("time", { datetime: call.date, text: call.time }),
            document.createTextNode((call.queue ? " · " + call.queue : "") + " "),
          ]),
          link,
          call.transcription ? CC.el("blockquote", { text: call.transcription }) : null,
        ]);
      }));
    }

    const list = document.getElementById("agent-rows");
    if (list.contains(document.activeElement)) {
      // A supervisor is choosing an activity: the forms stay as they are, each agent's line is brought up to date.
      const rows = new Map(Array.from(list.children).map(function (li) { return [li.dataset.sid, li]; }));
      const focused = document.activeElement.closest("li");
      state.agents.forEach(function (agent) {
        const row = rows.get(agent.sid);
        if (!row || !row.querySelector(".agent-line")) return;
        row.replaceChild(agentLine(agent), row.querySelector(".agent-line"));
        const select = row.querySelector("select");
        if (row !== focused && select) select.value = agent.activity_sid;  // only the row in hand keeps its choice
      });
      return;
    }
    list.replaceChildren(...state.agents.map(function (agent) {
      const line = agentLine(agent);
      const select = CC.el("select", { name: "activity_sid", "aria-label": "Activity of " + agent.name },
        state.activities.map(function (activity) {
          return CC.el("option", { value: activity.sid, text: activity.name, selected: activity.sid === agent.activity_sid });
        }));
      const form = CC.actionForm(url("activityUrl", agent.sid), "Set", "", {});
      form.classList.add("agent-activity");
      form.insertBefore(select, form.querySelector("button"));
      form.appendChild(CC.el("a", { href: url("editAgentUrl", agent.sid), text: "Edit" }));
      form.appendChild(document.createTextNode(" "));
      form.appendChild(CC.el("a", { href: url("agentWhyUrl", agent.sid), text: "Why no calls?" }));
      const signOut = CC.actionForm(url("signOutUrl", agent.sid), "Sign " + agent.name + " out everywhere", "link", {},
        "Sign " + agent.name + " out of every browser and phone? They must sign in again to take calls on the console.");
      signOut.classList.add("agent-sign-out");
      return CC.el("li", { "data-sid": agent.sid }, [line, form, signOut]);
    }));

  }

  setInterval(tick, 1000);
  CC.interceptForms(root, render);
  CC.follow(root.dataset.stateUrl, root.dataset.liveUrl, render);
})();
