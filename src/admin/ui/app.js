// The admin page (P8.7): polls the admin API once a second and draws the
// supervision tree, the modules (with reload / enable / disable), the
// routes, and live request rate, error rate and latency computed from
// /metrics. The bearer token, if the API wants one, is asked for once and
// kept in this browser's localStorage.
"use strict";

const TOKEN_KEY = "troupe-admin-token";
const POLL_MS = 1000;
const SPARK_POINTS = 120;

let token = localStorage.getItem(TOKEN_KEY) || "";
let previous = null; // the last metrics sample, for rates
const history = []; // requests per second, newest last

const $ = (id) => document.getElementById(id);

/** Calls the admin API; a 401 asks for the token. */
async function api(path, options = {}) {
  const headers = token ? { Authorization: `Bearer ${token}` } : {};
  // The API takes a POST only as JSON, so that no form elsewhere can send one.
  if (options.method === "POST") headers["Content-Type"] = "application/json";
  const resp = await fetch(path, { ...options, headers });
  if (resp.status === 401) {
    showLogin(token ? "that token was refused" : "");
    throw new Error("unauthorized");
  }
  return resp;
}

async function json(path) {
  const resp = await api(path);
  return resp.json();
}

function showLogin(message) {
  $("login").hidden = false;
  $("login-error").textContent = message;
  $("token").focus();
}

$("login").addEventListener("submit", (e) => {
  e.preventDefault();
  token = $("token").value.trim();
  localStorage.setItem(TOKEN_KEY, token);
  $("login").hidden = true;
  refresh(true);
});

/** Makes an element: el("td", {class: "num"}, "3"). */
function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  for (const c of children) node.append(c);
  return node;
}

// ---- supervision tree -------------------------------------------------

/** The module a plugin host runs: `plugin.hello_c` (or `plugin.hello_c#3`). */
function moduleOf(name) {
  return name.startsWith("plugin.") ? name.slice(7).split("#")[0] : null;
}

function treeNode(node) {
  const label = el("span", {}, `${node.name} `);
  const li = el("li", { "data-actor": node.name }, label,
    el("span", { class: `status-${node.status}` }, node.status),
    el("span", { class: "kind" }, ` ${node.kind}`));
  if (node.module) {
    li.dataset.module = moduleOf(node.name);
    li.append(el("span", { class: "kind" },
      ` · module ${node.module.status}, generation ${node.module.generation}, restarts ${node.module.restarts ?? 0}`));
  }
  if (node.children.length) {
    li.append(el("ul", {}, ...node.children.map(treeNode)));
  }
  return li;
}

function drawTree(tree) {
  $("tree").replaceChildren(treeNode(tree));
}

// ---- modules ----------------------------------------------------------

// Rows are kept and updated in place, not rebuilt on every poll: a click
// whose press and release straddled a rebuild landed on two different
// buttons, and the browser sent no click at all.
function drawModules(modules) {
  const body = $("modules").tBodies[0];
  const old = new Map([...body.rows].map((r) => [r.dataset.module, r]));
  const rows = modules.map((m) => {
    const row = old.get(m.name) ?? moduleRow(m.name);
    const [, kind, status, generation, restarts] = row.cells;
    kind.textContent = m.kind;
    status.textContent = m.status;
    status.className = `status status-${m.status}`;
    generation.textContent = String(m.loads);
    restarts.textContent = String(m.restarts ?? 0);
    return row;
  });
  if (rows.length !== body.rows.length || rows.some((r, i) => body.rows[i] !== r)) {
    body.replaceChildren(...rows);
  }
}

function moduleRow(name) {
  const actions = el("td", { class: "actions" });
  for (const action of ["reload", "disable", "enable"]) {
    const button = el("button", { type: "button", "data-action": action }, action);
    button.addEventListener("click", () => act(name, action));
    actions.append(button, " ");
  }
  return el("tr", { "data-module": name },
    el("td", {}, el("code", {}, name)),
    el("td", {}),
    el("td", { class: "status" }),
    el("td", { class: "num generation" }),
    el("td", { class: "num restarts" }),
    actions);
}

async function act(name, action) {
  $("action-result").textContent = `${action} ${name}…`;
  try {
    const resp = await api(`/modules/${encodeURIComponent(name)}/${action}`, { method: "POST" });
    const body = await resp.json();
    $("action-result").textContent = resp.ok
      ? `${action} ${name}: done`
      : `${action} ${name}: ${body.error ?? resp.status}`;
  } catch (e) {
    $("action-result").textContent = `${action} ${name}: ${e.message}`;
  }
  refresh(false);
}

// ---- routes -----------------------------------------------------------

function drawRoutes(servers) {
  const blocks = servers.map((s) => {
    const names = s.names.length ? s.names.join(", ") : "(any host)";
    const rows = s.routes.map((r) => el("tr", {},
      el("td", {}, el("code", {}, r.pattern)),
      el("td", {}, r.methods ? r.methods.join(" ") : "any"),
      el("td", {}, r.handler),
      el("td", { class: "num" }, String(r.middleware))));
    return el("div", {},
      el("h3", {}, `${names}${s.default ? " · default" : ""}`),
      el("table", {},
        el("thead", {}, el("tr", {}, el("th", {}, "path"), el("th", {}, "methods"),
          el("th", {}, "handler"), el("th", {}, "middleware"))),
        el("tbody", {}, ...rows)));
  });
  $("routes").replaceChildren(...blocks);
}

// ---- metrics ----------------------------------------------------------

/** Sums the request series of a Prometheus text page. */
function parseMetrics(text) {
  const m = { total: 0, errors: 0, sum: 0, count: 0, buckets: new Map() };
  for (const line of text.split("\n")) {
    if (!line || line.startsWith("#")) continue;
    const space = line.lastIndexOf(" ");
    const series = line.slice(0, space);
    const value = Number(line.slice(space + 1));
    const brace = series.indexOf("{");
    const name = brace < 0 ? series : series.slice(0, brace);
    const labels = brace < 0 ? "" : series.slice(brace);
    switch (name) {
      case "troupe_http_requests_total":
        m.total += value;
        if (labels.includes('status="5xx"')) m.errors += value;
        break;
      case "troupe_http_request_duration_seconds_sum": m.sum += value; break;
      case "troupe_http_request_duration_seconds_count": m.count += value; break;
      case "troupe_http_request_duration_seconds_bucket": {
        const le = /le="([^"]+)"/.exec(labels)?.[1];
        if (le) m.buckets.set(le, (m.buckets.get(le) ?? 0) + value);
        break;
      }
    }
  }
  return m;
}

function ms(seconds) {
  return seconds < 0.001 ? `${(seconds * 1e6).toFixed(0)} µs` : `${(seconds * 1e3).toFixed(1)} ms`;
}

/** The bucket bound under which 99% of the sample's requests finished. */
function p99(now, before) {
  const bounds = [...now.buckets.keys()].sort((a, b) => Number(a) - Number(b));
  const count = now.count - before.count;
  for (const le of bounds) {
    if ((now.buckets.get(le) - (before.buckets.get(le) ?? 0)) >= 0.99 * count) {
      return le === "+Inf" ? "> max bucket" : `≤ ${ms(Number(le))}`;
    }
  }
  return "–";
}

function drawMetrics(sample) {
  $("total").textContent = String(sample.total);
  if (previous) {
    const seconds = (sample.at - previous.at) / 1000;
    const requests = sample.total - previous.total;
    const rps = requests / seconds;
    $("rps").textContent = rps.toFixed(rps < 10 ? 1 : 0);
    $("errors").textContent = requests > 0
      ? `${(100 * (sample.errors - previous.errors) / requests).toFixed(1)} %` : "0 %";
    const finished = sample.count - previous.count;
    $("latency").textContent = finished > 0 ? ms((sample.sum - previous.sum) / finished) : "–";
    $("p99").textContent = finished > 0 ? p99(sample, previous) : "–";
    history.push(rps);
    if (history.length > SPARK_POINTS) history.shift();
    drawSpark();
  }
  previous = sample;
}

function drawSpark() {
  const canvas = $("spark");
  const g = canvas.getContext("2d");
  const { width, height } = canvas;
  g.clearRect(0, 0, width, height);
  const top = Math.max(1, ...history);
  g.strokeStyle = getComputedStyle(document.documentElement).getPropertyValue("--accent");
  g.lineWidth = 1.5;
  g.beginPath();
  history.forEach((v, i) => {
    const x = (i / (SPARK_POINTS - 1)) * width;
    const y = height - 2 - (v / top) * (height - 4);
    if (i === 0) g.moveTo(x, y); else g.lineTo(x, y);
  });
  g.stroke();
}

// ---- config status ----------------------------------------------------

function drawConfigStatus(s) {
  let text = `config generation ${s.generation} · ${s.reloads} reloads, ${s.failures} refused`;
  if (s.last && !s.last.ok) text += ` · last reload refused: ${s.last.error}`;
  $("config-status").textContent = text;
  $("config-status").className = s.last && !s.last.ok ? "error" : "muted";
}

// ---- polling ----------------------------------------------------------

let ticks = 0;

async function refresh(all) {
  try {
    const [tree, modules, metrics, status] = await Promise.all([
      json("/tree"), json("/modules"), api("/metrics").then((r) => r.text()), json("/config/status"),
    ]);
    drawTree(tree);
    drawModules(modules);
    drawMetrics({ ...parseMetrics(metrics), at: Date.now() });
    drawConfigStatus(status);
    if (all || ticks % 5 === 0) drawRoutes(await json("/routes"));
    $("connection").textContent = "live";
    $("connection").className = "pill ok";
  } catch (e) {
    if (e.message !== "unauthorized") {
      $("connection").textContent = "unreachable";
      $("connection").className = "pill down";
    }
  }
  ticks += 1;
}

refresh(true);
setInterval(() => { if ($("login").hidden) refresh(false); }, POLL_MS);
