// The demo's part of the live page: the simulated fault (from the demo's state URL, a
// superset of resilient_http's), its start and clear controls, and the burst button.
"use strict";

(function () {
  const {el, onState} = window.resilientHttp;
  const BURST_URL = document.body.dataset.burstUrl;

  onState.push((state) => {
    // Every fault, each led by its target once one is for a single replica.
    const faults = state.faults;
    const fault = document.getElementById("fault");
    const lines = faults.length ? faults.map((f) => f.description) : ["No simulated outage: Users is healthy."];
    fault.replaceChildren(...lines.flatMap((line, i) => (i ? [el("br", {}), line] : [line])));
    fault.className = `fault-line ${faults.some((f) => f.active) ? "active" : ""}`;
  });

  // Start and clear: the forms post with their CSRF token; errors are shown, nothing reloads.
  for (const form of document.querySelectorAll("form.fault-form")) {
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const errors = document.getElementById("fault-errors");
      errors.replaceChildren();
      let lines;
      try {
        const body = new FormData(form);
        const target = document.getElementById("fault-target");  // only with several replicas
        if (target) body.set("target", target.value);
        const response = await fetch(form.action, {method: "POST", body, credentials: "same-origin"});
        const type = response.headers.get("Content-Type") || "";
        const data = type.includes("json") ? await response.json() : {errors: [`${response.status} ${response.statusText}`]};
        lines = data.ok ? [] : data.errors || [data.detail || `${response.status}`];
        if (data.ok) document.getElementById("fault").textContent = data.message;
      } catch (err) {
        lines = [err.message];
      }
      errors.replaceChildren(...lines.map((line) => el("li", {}, line)));
    });
  }

  // Burst: real HTTP requests to this Orders, a few at a time, tallied by answer.
  document.getElementById("burst").addEventListener("click", async (event) => {
    const button = event.currentTarget;
    const total = Number(button.dataset.count) || 20;
    const out = document.getElementById("burst-result");
    const tally = {};
    let sent = 0;
    let done = 0;
    const show = () => {
      out.textContent = `${done}/${total} answered: ` + Object.entries(tally).map(([k, n]) => `${n}× ${k}`).join(", ");
    };
    async function worker() {
      while (sent < total) {
        sent += 1;
        let key;
        try {
          const response = await fetch(BURST_URL, {cache: "no-store"});
          key = String(response.status);
          if (!response.ok) {
            const problem = await response.json().catch(() => ({}));
            if (problem.code) key += ` ${problem.code}`;
          }
        } catch (err) {
          key = "network error";
        }
        tally[key] = (tally[key] || 0) + 1;
        done += 1;
        show();
      }
    }
    button.disabled = true;
    show();
    await Promise.all([worker(), worker(), worker(), worker()]);
    button.disabled = false;
    out.dataset.done = String(done);
  });

})();
