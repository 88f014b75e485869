// resilient_http's live page: polls the state URL every POLL_MS and redraws each upstream;
// no framework, no build. A page that extends it (the demo's fault controls) adds a renderer:
// window.resilientHttp.onState.push((state) => ...), called with every state polled.
"use strict";

(function () {
  const body = document.body;
  const STATE_URL = body.dataset.stateUrl;
  const POLL_MS = Number(body.dataset.pollMs) || 500;

  // Build an element: el("div", {class: "x"}, child, "text", ...). Text is never parsed as HTML.
  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (key === "style") Object.assign(node.style, value);
      else node.setAttribute(key, value);
    }
    for (const child of children.flat()) {
      if (child === null || child === undefined) continue;
      node.append(child instanceof Node ? child : String(child));
    }
    return node;
  }

  const secs = (s) => (s === null || s === undefined ? "–" : s < 1 ? `${Math.round(s * 1000)} ms` : `${s.toFixed(2)} s`);
  const clock = (at) => {
    const d = new Date(at * 1000);
    return d.toLocaleTimeString([], {hour12: false}) + "." + String(d.getMilliseconds()).padStart(3, "0");
  };

  // An attempt's outcome as a colour class: what kind of failure it was.
  function kind(outcome) {
    if (/^\d+$/.test(outcome)) {
      const status = Number(outcome);
      return status >= 500 || status === 429 ? "err" : "ok";
    }
    if (/timeout|deadline/.test(outcome)) return "timeout";
    if (/connect|reset/.test(outcome)) return "conn";
    return "bad";
  }

  function breakerCard(up) {
    const b = up.breaker;
    if (!b) return el("div", {class: "card"}, el("h3", {}, "Breaker"), el("b", {class: "breaker-state"}, "none"));
    let next = "";
    if (b.state === "open") next = b.next_probe > 0 ? `next probe in ${b.next_probe.toFixed(1)} s` : "probe due: the next call goes through";
    else if (b.state === "half_open") next = "one probe call in flight";
    else next = "calls go through";
    return el("div", {class: `card breaker ${b.state}`},
      el("h3", {}, "Circuit breaker"),
      el("b", {class: "breaker-state", "data-testid": `breaker-${up.name}`}, b.state.replace("_", "-")),
      el("span", {}, next),
      el("small", {}, `opens on ${b.consecutive_failures} failed calls in a row or ≥ ${Math.round(b.failure_ratio * 100)} % failed; probes after ${b.reset} s`));
  }

  function budgetCard(up) {
    const g = up.budget;
    const cap = g.floor + g.ratio * g.recent_requests;
    const pct = cap > 0 ? Math.max(0, Math.min(100, (g.available / cap) * 100)) : 0;
    return el("div", {class: "card"},
      el("h3", {}, "Retry budget"),
      el("b", {class: "budget-available"}, g.available.toFixed(1)), " retries available",
      el("div", {class: "gauge"}, el("div", {style: {width: `${pct}%`}})),
      el("small", {}, `last ${g.window} s: ${g.recent_requests} requests, ${g.recent_retries} retries; ` +
        `allowed: ${Math.round(g.ratio * 100)} % of requests + ${g.floor}`));
  }

  function inFlightCard(up) {
    const limit = up.concurrency_limit === null || up.concurrency_limit === undefined ? "none" : up.concurrency_limit;
    return el("div", {class: "card"},
      el("h3", {}, "In flight"),
      el("b", {class: "in-flight"}, up.in_flight), " calls",
      el("small", {}, `concurrency limit: ${limit}`));
  }

  function timeline(up) {
    const calls = up.calls;
    // One scale for all rows: the longest call shown, with room; the deadline is drawn where
    // it falls, or as an arrow at the right edge when it lies beyond (a 5 s deadline would
    // squash 100 ms of attempts and backoff into a few pixels).
    let longest = 0;
    let deadline = 0;
    for (const c of calls) {
      longest = Math.max(longest, c.duration);
      deadline = Math.max(deadline, c.deadline || 0);
    }
    const scale = Math.min(deadline || Infinity, Math.max(0.2, longest * 1.25));
    const pct = (s) => `${Math.min(100, (s / scale) * 100)}%`;
    const rows = calls.map((c) => {
      const marks = [];
      for (const a of c.attempts) {
        marks.push(el("span", {
          class: `attempt ${kind(a.outcome)}`, title: `attempt ${a.number}${a.host ? ` on ${a.host}` : ""}: ${a.outcome} in ${secs(a.elapsed)}`,
          style: {left: pct(a.start), width: `max(4px, ${pct(a.elapsed)})`},
        }));
        if (a.wait !== null) {
          marks.push(el("span", {
            class: "wait", title: `backoff ${secs(a.wait)}`,
            style: {left: pct(a.start + a.elapsed), width: pct(a.wait)},
          }));
        }
      }
      if (c.result === "rejected") marks.push(el("span", {class: "attempt rejected", title: "breaker open: not sent", style: {left: "0", width: "4px"}}));
      if (c.in_flight) marks.push(el("span", {class: "pending", style: {left: "0", width: pct(c.duration)}}));
      if (c.deadline && c.deadline <= scale) {
        marks.push(el("span", {class: "deadline", title: `deadline ${secs(c.deadline)}`, style: {left: pct(c.deadline)}}));
      } else if (c.deadline) {
        marks.push(el("span", {class: "deadline beyond", title: `deadline ${secs(c.deadline)}`}, `deadline ${secs(c.deadline)} →`));
      }
      const result = c.in_flight ? "in flight" : c.result;
      const title = [c.cause, ...c.notes].filter(Boolean).join("; ");
      return el("div", {class: `row ${c.result || "in-flight"}`, title},
        el("span", {class: "at"}, clock(c.at)),
        el("span", {class: "result"}, result, c.notes.length ? el("em", {}, ` ${c.notes.map((n) => n.split(":")[0]).join(", ")}`) : null,
          c.trace_id ? el("small", {class: "trace", title: `trace ${c.trace_id}`, "data-trace": c.trace_id}, ` ${c.trace_id.slice(0, 8)}`) : null),
        el("span", {class: "bar"}, marks),
        el("span", {class: "dur"}, secs(c.duration)));
    });
    const ticks = [];
    const step = [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2].find((s) => scale / s <= 8) || 5;
    for (let i = 0; i * step <= scale + 1e-9; i += 1) {
      ticks.push(el("span", {style: {left: pct(i * step)}}, i ? secs(i * step) : "0"));
    }
    return el("div", {class: "timeline"},
      el("h3", {}, `Last ${calls.length} calls `, el("small", {}, "newest first; one mark per attempt, backoff hatched, deadline red")),
      el("div", {class: "legend"}, [
        ["ok", "2xx/4xx"], ["err", "5xx/429"], ["timeout", "timeout"], ["conn", "refused/reset"], ["bad", "bad body"], ["rejected", "breaker open"],
      ].map(([k, label]) => el("span", {}, el("i", {class: `attempt ${k}`}), label))),
      el("div", {class: "row axis"}, el("span"), el("span"), el("span", {class: "bar"}, ticks), el("span")),
      rows.length ? rows : el("p", {class: "muted"}, `No calls yet: this panel fills when something calls ${up.name}.`));
  }

  function transitions(up) {
    if (!up.transitions.length) return null;
    return el("p", {class: "transitions muted"}, "Breaker: ",
      up.transitions.slice(0, 6).map((t) => el("span", {class: t.to}, `${clock(t.at)} ${t.to.replace("_", "-")} (${t.cause})`)));
  }

  // Several hosts: each one's state as the balancer sees it (one host: nothing to show).
  function hosts(up) {
    if (!up.hosts || up.hosts.length < 2) return null;
    return el("table", {class: "hosts"},
      el("tr", {}, ["host", "state", "in flight", "load", "ejections", "recent"].map((h) => el("th", {}, h))),
      up.hosts.map((h) => el("tr", {class: h.ejected_for === null ? "in-rotation" : "ejected", "data-host": h.label},
        el("td", {}, h.label),
        el("td", {}, h.ejected_for === null ? "in rotation" : `ejected, back in ${secs(h.ejected_for)}`),
        el("td", {}, String(h.in_flight)),
        el("td", {title: "peak-EWMA latency x (in flight + 1)"}, secs(h.load)),
        el("td", {}, String(h.ejections)),
        el("td", {class: "recent"}, h.recent.join(" ")))));
  }

  function upstream(up) {
    const where = up.hosts && up.hosts.length > 1 ? `${up.hosts.length} hosts` : up.base_url;
    return el("section", {class: "panel upstream", "data-upstream": up.name},
      el("h2", {}, up.name, " ", el("small", {}, `${where} · deadline ${up.deadline} s · up to ${up.attempts} attempts`)),
      el("div", {class: "cards"}, breakerCard(up), budgetCard(up), inFlightCard(up)),
      hosts(up),
      transitions(up),
      timeline(up));
  }

  const onState = [];
  window.resilientHttp = {el, onState};

  function render(state) {
    document.getElementById("upstreams").replaceChildren(...state.upstreams.map(upstream));
    document.getElementById("updated").textContent =
      `process ${state.pid} · updated ${new Date().toLocaleTimeString([], {hour12: false})}`;
    for (const renderer of onState) renderer(state);
  }

  async function poll() {
    try {
      const response = await fetch(STATE_URL, {headers: {Accept: "application/json"}, cache: "no-store"});
      if (!response.ok) throw new Error(`state: ${response.status}`);
      render(await response.json());
    } catch (err) {
      document.getElementById("updated").textContent = `not updating: ${err.message}`;
    }
    // The next poll after this one ends: a slow server never sees polls pile up.
    setTimeout(poll, document.hidden ? POLL_MS * 10 : POLL_MS);
  }

  // After the page's own scripts have registered their renderers (they load after this one).
  window.addEventListener("DOMContentLoaded", () => {
    render(JSON.parse(document.getElementById("initial-state").textContent));
    setTimeout(poll, POLL_MS);
  });
})();
