// tidewatch status board: refreshes the server-rendered page from /v1/status and sends the
// actions. Every string from the API is set with textContent (never innerHTML): container
// names, labels and registry answers are not trusted. The token lives in sessionStorage and
// travels only in the Authorization header of requests to this origin.
"use strict";
(function () {
  const TOKEN_KEY = "tidewatch.token";
  const POLL_MS = 5000;
  const FOLLOW_MS = 1000;
  const BADGES = {
    up_to_date: "up to date",
    update_available: "update available",
    waiting: "waiting",
    quarantined: "held",
    error: "error",
    skipped: "skipped",
    unknown: "unknown",
  };
  const $ = (id) => document.getElementById(id);
  let token = sessionStorage.getItem(TOKEN_KEY) || "";
  let following = null; // the id of the action whose result is awaited
  let followingWhat = "";
  let snapshot = null;
  let timer = null;

  function el(tag, text, className) {
    const e = document.createElement(tag);
    if (text !== undefined && text !== null) e.textContent = String(text);
    if (className) e.className = className;
    return e;
  }

  function when(iso) {
    if (!iso) return el("span", "–");
    const t = el("time", new Date(iso).toLocaleString());
    t.dateTime = iso;
    t.title = iso;
    return t;
  }

  function digest(d) {
    if (!d) return el("span", "–");
    const hex = d.includes(":") ? d.slice(d.indexOf(":") + 1) : d;
    const c = el("code", hex.slice(0, 12));
    c.title = d;
    return c;
  }

  function isWebLink(url) {
    return /^https?:\/\//i.test(String(url).trim());
  }

  function authHeaders() {
    return token ? { Authorization: "Bearer " + token } : {};
  }

  function say(text, failed) {
    const s = $("action-status");
    s.textContent = text;
    s.classList.toggle("failed", !!failed);
  }

  function renderFacts(s) {
    const parts = ["tidewatch " + s.agent.version, "up " + uptime(s.agent.uptime_secs)];
    if (s.engine) {
      parts.push(
        "engine " + s.engine.flavor + " " + (s.engine.version || "?") +
          " (API " + s.engine.api_version + ") at " + s.engine.host
      );
    }
    $("facts").textContent = parts.join(" · ");
  }

  function uptime(secs) {
    const d = Math.floor(secs / 86400);
    const h = Math.floor((secs % 86400) / 3600);
    const m = Math.floor((secs % 3600) / 60);
    if (d) return d + "d " + h + "h";
    if (h) return h + "h " + m + "m";
    return m + "m " + (secs % 60) + "s";
  }

  function renderCycles(s) {
    const dl = $("cycles");
    const items = [];
    const c = s.last_cycle;
    if (c) {
      const took = (new Date(c.finished_at) - new Date(c.started_at)) / 1000;
      const dd = el("dd");
      dd.append(when(c.finished_at));
      let text = " · took " + took.toFixed(1) + " s · " + (c.succeeded ? "succeeded" : "had failures");
      if (s.last_cycle_requests !== null && s.last_cycle_requests !== undefined) {
        text += " · " + s.last_cycle_requests + " registry requests";
      }
      const k = c.counts;
      text += " · " + k.updated + " updated, " + k.rolled_back + " rolled back, " + k.failed +
        " failed, " + k.skipped + " skipped, " + k.check_errors + " check errors";
      dd.append(text);
      items.push(el("dt", "Last cycle"), dd);
    } else {
      items.push(el("dt", "Last cycle"), el("dd", "none yet"));
    }
    if (s.next_cycle) {
      const dd = el("dd");
      dd.append(when(s.next_cycle.at), " · " + s.next_cycle.reason);
      items.push(el("dt", "Next cycle"), dd);
    } else {
      items.push(el("dt", "Next cycle"), el("dd", "after the first cycle"));
    }
    dl.replaceChildren(...items);
  }

  function button(label, path, what) {
    const b = el("button", label);
    b.type = "button";
    b.addEventListener("click", () => act(path, what));
    return b;
  }

  function actionsFor(row, waits) {
    const td = el("td", null, "js-only actions");
    const name = encodeURIComponent(row.container);
    const q = "?container=" + name;
    const monitorOnly = waits && waits.reason_kind === "monitor_only";
    if ((row.badge === "update_available" || row.badge === "waiting") && !monitorOnly) {
      td.append(button("Update now", "/v1/update" + q, "Update " + row.container));
    }
    if (waits && waits.reason_kind === "maintenance_window") {
      td.append(button("Update anyway", "/v1/update" + q + "&force=true",
        "Update " + row.container + " anyway"));
    }
    if (row.updated_at) {
      td.append(button("Roll back", "/v1/rollback" + q, "Roll back " + row.container));
    }
    if (row.held || row.badge === "quarantined") {
      td.append(button("Release hold", "/v1/release" + q, "Release " + row.container));
    }
    return td;
  }

  // The status, digest and version cells of a container's or a file's row.
  function statusCells(badge, detail, until, r) {
    const status = el("td");
    status.append(el("span", BADGES[badge] || "unknown", "badge " + badge));
    if (detail) status.append(el("br"), el("small", detail, "why"));
    if (until) {
      const u = el("small", "until ");
      u.append(when(until));
      status.append(el("br"), u);
    }
    const dig = el("td");
    dig.append(digest(r.current_digest));
    if (r.available_digest && r.available_digest !== r.current_digest) {
      dig.append(" → ", digest(r.available_digest));
    }
    const version = el("td");
    const cur = r.current_version;
    const avail = r.available_version;
    if (cur && avail && cur !== avail) version.append(cur + " → " + avail);
    else version.append(cur || avail || "–");
    if (r.changes_url && isWebLink(r.changes_url)) {
      const a = el("a", "changes");
      a.href = r.changes_url;
      a.rel = "noopener noreferrer";
      a.target = "_blank";
      version.append(" ", a);
    }
    return [status, dig, version];
  }

  function renderRows(s) {
    const rows = s.containers.map((r) => {
      const tr = el("tr");
      tr.dataset.container = r.container;
      const th = el("th");
      th.scope = "row";
      th.append(el("span", r.container, "name"), el("br"), el("small", r.image, "image"));
      const [status, dig, version] = statusCells(r.badge, r.badge_detail, r.waiting_until, r);
      const policy = el("td", r.policy || "–");
      if (r.window) policy.append(el("br"), el("small", "window " + r.window));
      const checked = el("td");
      checked.append(when(r.checked_at));
      const updated = el("td");
      updated.append(when(r.updated_at));
      const waits = s.pending.find((w) => w.container === r.container);
      tr.append(th, status, dig, version, policy, checked, updated, actionsFor(r, waits));
      return tr;
    });
    $("rows").replaceChildren(...rows);
  }

  function renderGitops(s) {
    const repos = s.gitops || [];
    $("gitops-section").hidden = repos.length === 0;
    const rows = repos.flatMap((repo) => repo.rows.map((r) => {
      const tr = el("tr");
      tr.dataset.row = r.container;
      const th = el("th");
      th.scope = "row";
      th.append(el("span", r.container, "name"), el("br"), el("small", r.image, "image"));
      const [status, dig, version] = statusCells(r.status, r.detail, null, r);
      const where = el("td", repo.repo);
      if (repo.commit) {
        const pushed = el("small", "pushed ");
        const c = el("code", repo.commit.slice(0, 12));
        c.title = repo.commit;
        pushed.append(c, " ", when(repo.pushed_at));
        where.append(el("br"), pushed);
      }
      const checked = el("td");
      checked.append(when(repo.checked_at));
      tr.append(th, status, dig, version, where, checked);
      return tr;
    }));
    $("gitops-rows").replaceChildren(...rows);
  }

  function renderHistory(s) {
    const filter = $("history-filter");
    const chosen = filter.value;
    const names = [...new Set(s.history.map((h) => h.container))].sort();
    const options = [el("option", "all")];
    options[0].value = "";
    for (const n of names) {
      const o = el("option", n);
      o.value = n;
      options.push(o);
    }
    filter.replaceChildren(...options);
    filter.value = names.includes(chosen) ? chosen : "";
    const rows = s.history
      .filter((h) => !filter.value || h.container === filter.value)
      .map((h) => {
        const tr = el("tr");
        tr.dataset.container = h.container;
        const at = el("td");
        at.append(when(h.at));
        const outcome = el("td");
        outcome.append(el("span", h.outcome, "outcome " + h.outcome));
        const move = el("td");
        move.append(digest(h.from_digest), " → ", digest(h.to_digest));
        tr.append(at, el("td", h.container), outcome, move,
          el("td", (h.duration_ms / 1000).toFixed(1) + " s"), el("td", h.reason));
        return tr;
      });
    $("history-rows").replaceChildren(...rows);
  }

  function followAction(s) {
    if (following === null) return;
    const a = (s.actions || []).find((x) => x.id === following);
    if (!a) return;
    if (a.state === "queued" || a.state === "running") {
      say(followingWhat + ": " + a.state + "…");
      return;
    }
    say(followingWhat + ": " + a.state + (a.detail ? " – " + a.detail : ""), a.state === "failed");
    following = null;
  }

  function render(s) {
    snapshot = s;
    const locked = $("locked");
    if (locked) locked.hidden = true;
    renderFacts(s);
    renderCycles(s);
    renderRows(s);
    renderGitops(s);
    renderHistory(s);
    followAction(s);
  }

  function schedule(ms) {
    clearTimeout(timer);
    timer = setTimeout(poll, ms);
  }

  async function poll() {
    try {
      const r = await fetch("/v1/status", {
        headers: authHeaders(), cache: "no-store", credentials: "omit",
      });
      if (r.status === 401) {
        say(token ? "The token was refused." : "Enter the API token to see the status.", true);
        $("token").focus();
      } else if (r.ok) {
        render(await r.json());
      }
    } catch (e) {
      say("The agent does not answer; trying again.", true);
    }
    schedule(following !== null ? FOLLOW_MS : POLL_MS);
  }

  async function act(path, what) {
    say(what + ": sending…");
    let r;
    try {
      r = await fetch(path, {
        method: "POST", headers: authHeaders(), cache: "no-store", credentials: "omit",
      });
    } catch (e) {
      say(what + ": the agent does not answer", true);
      return;
    }
    let body = {};
    try {
      body = await r.json();
    } catch (e) {
      body = {};
    }
    if (r.status === 401) {
      say(what + ": refused: " + (token ? "the API token is wrong" : "enter the API token first"), true);
      $("token").focus();
      return;
    }
    if (!r.ok) {
      say(what + ": refused (" + r.status + "): " + (body.error || r.statusText), true);
      return;
    }
    following = typeof body.action === "number" ? body.action : null;
    followingWhat = what;
    say(what + ": queued…");
    schedule(FOLLOW_MS);
  }

  function showToken() {
    $("forget").hidden = !token;
    $("token").placeholder = token ? "token set for this tab" : "";
  }

  document.documentElement.classList.add("js");
  $("controls").hidden = false;
  $("token-form").addEventListener("submit", (e) => {
    e.preventDefault();
    token = $("token").value.trim();
    $("token").value = "";
    if (token) sessionStorage.setItem(TOKEN_KEY, token);
    else sessionStorage.removeItem(TOKEN_KEY);
    showToken();
    say(token ? "Token set for this tab." : "Token cleared.");
    poll();
  });
  $("forget").addEventListener("click", () => {
    token = "";
    sessionStorage.removeItem(TOKEN_KEY);
    showToken();
    say("Token forgotten.");
  });
  $("check-now").addEventListener("click", () => act("/v1/update", "Check now"));
  $("history-filter").addEventListener("change", () => snapshot && renderHistory(snapshot));
  showToken();
  poll();
})();
