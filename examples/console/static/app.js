// The Connect On LAN page. One EventSource brings everything the server
// has to say (hosts, scan status, sessions, credential prompts); actions
// are JSON POSTs that carry this page's ID and CSRF token. Text from the
// server only ever goes into the page through textContent.
"use strict";

const pageID = document.querySelector('meta[name="lc-page"]').content;
const token = document.querySelector('meta[name="lc-token"]').content;
const $ = (id) => document.getElementById(id);

// post sends an action and returns its JSON answer, or throws an Error
// with the server's message.
async function post(path, body) {
  const r = await fetch(path, {
    method: "POST",
    headers: { "Content-Type": "application/json", "X-Page-ID": pageID, "X-CSRF-Token": token },
    body: JSON.stringify(body),
    credentials: "same-origin",
  });
  const data = await r.json().catch(() => ({}));
  if (!r.ok) throw new Error(data.error || r.statusText);
  return data;
}

// el makes an element with text (never HTML) and a class.
function el(tag, text, cls) {
  const e = document.createElement(tag);
  if (text !== undefined && text !== null) e.textContent = text;
  if (cls) e.className = cls;
  return e;
}

function showError(id, msg) {
  $(id).textContent = msg || "";
  $(id).hidden = !msg;
}

// ---- the computer list ----

const rows = new Map(); // host ID -> <tr>

function showHost(h) {
  let tr = rows.get(h.id);
  if (!tr) {
    tr = el("tr");
    tr.dataset.id = h.id;
    rows.set(h.id, tr);
  }
  const button = el("button", "Connect", "connect");
  button.addEventListener("click", () => connect(h.id, button));
  tr.dataset.name = h.name || h.dns || h.addrs[0] || "";
  tr.replaceChildren(
    el("td", tr.dataset.name, "name"),
    el("td", h.addrs.join(", "), "addrs"),
    el("td", h.domain),
    el("td", h.os),
    el("td", h.sources.join(", ")),
    el("td"),
  );
  tr.lastChild.append(button);
  // Keep the rows sorted by name.
  const body = $("hosts");
  const next = [...body.children].find((r) => r !== tr && r.dataset.name.localeCompare(tr.dataset.name) > 0);
  body.insertBefore(tr, next || null);
  updateCount();
}

function hideHost(id) {
  const tr = rows.get(id);
  if (tr) tr.remove();
  rows.delete(id);
  updateCount();
}

function updateCount() {
  $("count").textContent = rows.size === 1 ? "1 computer" : `${rows.size} computers`;
}

async function connect(id, button) {
  button.disabled = true;
  try {
    await post("/api/connect", { host: id });
  } catch (e) {
    alert(`Connect failed: ${e.message}`);
  } finally {
    button.disabled = false;
  }
}

// The filter is applied by the server (the SDK's live view), which hides
// and shows rows through the stream. Only the latest answer counts.
let filterSeq = 0;
let filterTimer = 0;
$("filter").addEventListener("input", () => {
  clearTimeout(filterTimer);
  filterTimer = setTimeout(async () => {
    const seq = ++filterSeq;
    try {
      await post("/api/filter", { filter: $("filter").value });
      if (seq === filterSeq) showError("filter-error", "");
    } catch (e) {
      if (seq === filterSeq) showError("filter-error", e.message);
    }
  }, 100);
});

// Rescan starts the console's one discovery again, for every page: the
// server resets each page's list ("reset") and fills it from the new scan.
$("rescan").addEventListener("click", async () => {
  $("rescan").disabled = true;
  try {
    await post("/api/rescan", {});
  } catch (e) {
    showError("scan-errors", `Rescan failed: ${e.message}`);
  } finally {
    $("rescan").disabled = false;
  }
});

function resetHosts() {
  for (const tr of rows.values()) tr.remove();
  rows.clear();
  updateCount();
}

// ---- sessions ----

const sessions = new Map(); // session ID -> <li>

function showSession(s) {
  let li = sessions.get(s.id);
  if (!li) {
    li = el("li", null, "session");
    li.dataset.id = s.id;
    sessions.set(s.id, li);
    $("sessions").prepend(li);
    $("no-sessions").hidden = true;
  }
  li.dataset.state = s.state;
  const head = el("div", null, "head");
  head.append(el("strong", s.host), el("span", s.addr, "muted"), el("span", s.state, `state ${s.state}`));
  // Connecting shows the step, Failed where it failed, Running and
  // Closed the launch method.
  let step = s.state === "Connecting" ? s.step : s.state === "Failed" ? `at ${s.step}` : "";
  if (s.method) step += step ? ` (${s.method})` : `via ${s.method}`;
  if (s.state === "Connecting" && s.total > 0) step += ` ${Math.round((100 * s.done) / s.total)}%`;
  if (s.closing) step = "closing…";
  head.append(el("span", step, "step"));
  if (s.state === "Connecting" || s.state === "Running") {
    const close = el("button", "Close", "close");
    close.disabled = !!s.closing;
    close.addEventListener("click", async () => {
      close.disabled = true;
      try {
        await post(`/api/close/${encodeURIComponent(s.id)}`, {});
      } catch (e) {
        alert(`Close failed: ${e.message}`);
      }
    });
    head.append(close);
  }
  const parts = [head];
  if (s.account) parts.push(el("div", `as ${s.account}`, "muted"));
  for (const a of s.attempts || []) parts.push(el("div", a, "muted"));
  if (s.diagnosis) {
    parts.push(el("div", s.diagnosis.summary, "diagnosis"));
    if (s.diagnosis.fix) parts.push(el("div", `Fix: ${s.diagnosis.fix}`, "muted"));
  } else if (s.error) {
    parts.push(el("div", s.error, "diagnosis"));
  }
  if (s.cleanup) {
    const left = s.cleanup.left.length;
    const text = `cleanup: ${s.cleanup.undone} undone, ` + (left ? `left on the computer: ${s.cleanup.left.join(", ")}` : "nothing left");
    parts.push(el("div", text, left ? "cleanup diagnosis" : "cleanup muted"));
  }
  li.replaceChildren(...parts);
}

// ---- credential prompts, one dialog at a time ----

const prompts = []; // waiting prompts; prompts[0] is in the dialog

function nextPrompt() {
  const d = $("prompt");
  if (prompts.length === 0) {
    if (d.open) d.close();
    return;
  }
  const p = prompts[0];
  $("prompt-host").textContent = p.host;
  $("prompt-reason").textContent = p.diagnosis ? p.diagnosis.summary : "Credentials are needed.";
  $("prompt-fix").textContent = p.diagnosis && p.diagnosis.fix ? p.diagnosis.fix : "";
  $("prompt-account").value = "";
  $("prompt-password").value = "";
  showError("prompt-error", "");
  if (!d.open) d.showModal();
  $("prompt-account").focus();
}

async function answerPrompt(body) {
  const p = prompts[0];
  if (!p) return;
  try {
    await post(`/api/prompt/${encodeURIComponent(p.id)}`, body);
  } catch (e) {
    $("prompt-password").value = "";
    showError("prompt-error", e.message);
    return;
  }
  prompts.shift();
  nextPrompt();
}

$("prompt-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  const body = { account: $("prompt-account").value, password: $("prompt-password").value };
  $("prompt-password").value = ""; // the password lives only in the POST
  answerPrompt(body);
});
$("prompt-cancel").addEventListener("click", () => answerPrompt({ cancel: true }));
$("prompt").addEventListener("cancel", (ev) => {
  ev.preventDefault(); // Escape: answer "cancelled" instead of hiding
  answerPrompt({ cancel: true });
});

function promptDone(id) {
  const i = prompts.findIndex((p) => p.id === id);
  if (i < 0) return;
  prompts.splice(i, 1);
  if (i === 0) nextPrompt();
}

// ---- the stream ----

const es = new EventSource(`/api/events?page=${encodeURIComponent(pageID)}&token=${encodeURIComponent(token)}`);
const on = (name, f) => es.addEventListener(name, (e) => f(JSON.parse(e.data)));
on("host", showHost);
on("hide", (d) => hideHost(d.id));
on("reset", resetHosts);
on("scan", (d) => {
  $("scanning").hidden = !d.scanning;
  showError("scan-errors", (d.errors || []).join("; "));
});
on("session", showSession);
on("prompt", (p) => {
  prompts.push(p);
  if (prompts.length === 1) nextPrompt();
});
on("prompt-done", (d) => promptDone(d.id));
es.addEventListener("open", () => {
  $("conn").textContent = "live";
  $("conn").className = "conn live";
});
es.addEventListener("error", () => {
  if (es.readyState === EventSource.CLOSED) {
    $("conn").textContent = "disconnected: reload the page";
    $("conn").className = "conn down";
  }
});
