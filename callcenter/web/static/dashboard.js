// The supervisor dashboard: renders the dashboard's snapshot on every live notice.
"use strict";
(function () {
  const CC = window.CallCenter;
  const root = document.getElementById("dashboard");
  const url = function (name, sid) { return root.dataset[name].replace("__SID__", encodeURIComponent(sid)); };
  const percent = function (value) { return value === null || value === undefined ? "–" : value + "%"; };
  const text = function (id, value) { document.getElementById(id).textContent = value; };

  function render(state) {
    text("total-waiting", state.totals.waiting);
    text("total-answered", state.totals.answered);
    text("total-abandoned", state.totals.abandoned);
    text("total-missed", state.totals.missed);
    text("total-asa", CC.duration(state.totals.average_speed_of_answer));
    text("total-sl", percent(state.totals.service_level));

    document.getElementById("queue-rows").replaceChildren(...state.queues.map(function (queue) {
      const cells = [queue.waiting, CC.duration(queue.longest_wait), queue.available_agents + " / " + queue.eligible_agents,
        queue.answered, queue.abandoned, queue.missed, CC.duration(queue.average_speed_of_answer),
        percent(queue.service_level)].map(function (value, index) {
        return CC.el("td", { className: index === 0 ? "num waiting" : "num", text: String(value) });
      });
      return CC.el("tr", { "data-sid": queue.sid }, [CC.el("th", { scope: "row", text: queue.name }), ...cells,
        CC.el("td", {}, [CC.el("a", { href: url("editQueueUrl", queue.sid), text: "Edit" })])]);
    }));

    const waiting = document.getElementById("waiting-calls");
    if (!state.waiting_calls.length) {
      waiting.replaceChildren(CC.el("li", { className: "muted", text: "Nobody is waiting." }));
    } else {
      waiting.replaceChildren(...state.waiting_calls.map(function (call) {
        return CC.el("li", { "data-sid": call.sid }, [
          CC.el("span", { className: "caller", text: call.caller || call.sid }),
          CC.el("span", { className: "muted", text: " " + CC.duration(call.waited) + (call.queue ? " · " + call.queue : "") +
            " · " + (call.status === "reserved" ? "ringing an agent" : "waiting") + " " }),
          CC.el("a", { href: url("taskWhyUrl", call.sid), text: "Why still waiting?" }),
        ]);
      }));
    }

    // The chart is drawn by the server (numbers only): it replaces the old one whole.
    document.getElementById("chart").innerHTML = state.chart_svg;

    const missed = document.getElementById("missed-calls");
    if (!state.missed_calls.length) {
      missed.replaceChildren(CC.el("li", { className: "muted", text: "No missed calls today." }));
    } else {
      missed.replaceChildren(...state.missed_calls.map(function (call) {
        const link = /^https?:\/\//.test(call.recording_url || "")
          ? CC.el("a", { href: call.recording_url, rel: "noopener noreferrer", target: "_blank",
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
    const focused = list.contains(document.activeElement) ? document.activeElement.closest("li") : null;
    if (focused) return;  // a supervisor is choosing an activity: do not pull the form from under them
    list.replaceChildren(...state.agents.map(function (agent) {
      const line = CC.el("div", { className: "agent-line" }, [
        CC.el("strong", { text: agent.name }),
        CC.el("span", { className: "pill " + (agent.available ? "available" : "unavailable"), text: agent.activity }),
        CC.el("span", { className: "muted", text: CC.duration(agent.seconds_in_activity) }),
        agent.task ? CC.el("span", { className: "task", text: agent.task.status + " · " + (agent.task.caller || agent.task.sid) + (agent.task.queue ? " · " + agent.task.queue : "") }) : null,
      ]);
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
      const signOut = CC.actionForm(url("signOutUrl", agent.sid), "Sign " + agent.name + " out everywhere", "link", {});
      signOut.classList.add("agent-sign-out");
      return CC.el("li", { "data-sid": agent.sid }, [line, form, signOut]);
    }));

  }

  CC.interceptForms(root, render);
  CC.follow(root.dataset.stateUrl, root.dataset.liveUrl, render);
})();
