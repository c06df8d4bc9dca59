// replog live page: polls ops/live (the node's /health, its per-second timeline, recent events and
// latest entries) and draws them. Plain JavaScript, no library, nothing fetched from elsewhere.
// ?poll_ms=N changes the polling period (default 1000, at least 200).
"use strict";

const POLL_MS = Math.max(200, Number(new URLSearchParams(location.search).get("poll_ms")) || 1000);
const WINDOW_S = 300; // the timeline the node keeps: five minutes
const COLORS = { blue: "#0969da", red: "#cf222e", green: "#1a7f37", orange: "#bc4c00", grey: "#8c959f" };

const $ = (id) => document.getElementById(id);
let polling = false;
let lastAnswerAt = null;
let wOptionsFor = null;

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key === "class") node.className = value;
    else if (key.startsWith("data-")) node.setAttribute(key, value);
    else node[key] = value;
  }
  for (const child of children) node.append(child instanceof Node ? child : String(child));
  return node;
}

function statusBadge(status) {
  return el("span", { class: `status status-${status.toLowerCase()}` }, status);
}

function seconds(value) {
  if (value === null || value === undefined) return "never";
  return value < 1 ? `${Math.round(value * 1000)} ms` : `${value.toFixed(1)} s`;
}

function clock(t) {
  return new Date(t * 1000).toLocaleTimeString([], { hour12: false });
}

// --- nodes -------------------------------------------------------------------------------------
function masterRows(live) {
  const h = live.health;
  const rows = [{
    key: live.name, name: live.name, role: "master", status: "Healthy", acked: h.last_seq, lag: 0,
    seen: 0, detail: h.read_only ? "read-only: no quorum" : "accepting appends",
  }];
  for (const s of h.secondaries) {
    let detail = s.replication;
    if (s.attempt) detail += `, attempt ${s.attempt}`;
    if (s.resent_entries) detail += `, ${s.resent_entries} resent`;
    if (s.last_error) detail += ` — ${s.last_error}`;
    else if (s.probe_error) detail += ` — ${s.probe_error}`;
    rows.push({
      key: s.url, name: s.url.replace(/^https?:\/\//, ""), role: "secondary", status: s.status,
      acked: s.acked_seq, lag: s.lag, seen: s.seconds_since_seen, detail,
    });
  }
  return rows;
}

function secondaryRows(live) {
  const h = live.health;
  return [{
    key: live.name, name: live.name, role: "secondary", status: "Healthy", acked: h.acked_seq, lag: "",
    seen: 0, detail: `received ${h.received_entries} entries, ${h.duplicate_entries} duplicates ignored`,
  }];
}

function renderNodes(live) {
  const rows = live.role === "master" ? masterRows(live) : secondaryRows(live);
  const body = $("nodes").tBodies[0];
  body.replaceChildren(...rows.map((r) => el("tr",
    { "data-node": r.key, "data-role": r.role, "data-status": r.status },
    el("td", {}, r.name),
    el("td", {}, r.role),
    el("td", {}, statusBadge(r.status)),
    el("td", { class: "num acked" }, r.acked),
    el("td", { class: "num lag" }, r.lag),
    el("td", { class: "num" }, seconds(r.seen)),
    el("td", { class: "detail" }, r.detail),
  )));
  const h = live.health;
  if (live.role === "master") {
    const q = h.quorum;
    $("summary").textContent = `Quorum: ${q.available} of ${q.nodes} nodes available, ${q.needed} needed. ` +
      `Waiting writers: ${h.waiting_writers}. Log ${h.log_id}.`;
    const mode = $("mode");
    mode.hidden = false;
    mode.textContent = h.read_only ? "read-only" : "writable";
    mode.className = `badge ${h.read_only ? "mode-read-only" : "mode-writable"}`;
  } else {
    const m = live.master;
    const where = h.master ? `The master is ${h.master}. `
      : m ? `Batches come from ${m.address}, the last ${seconds(m.seconds_since_batch)} ago. `
        : "No batch received yet. ";
    $("summary").textContent = `${where}This page shows this node only; the master's page shows ` +
      `the whole cluster. Log ${h.log_id || "(none yet)"}. Faults: delay ${h.faults.delay_s} s, ` +
      `error rate ${h.faults.error_rate}.`;
  }
}

// --- charts ------------------------------------------------------------------------------------
function niceMax(value, ticks) {
  // The smallest "round" tick (1, 2, 2.5 or 5 times a power of ten) whose `ticks` steps reach value.
  if (!(value > 0)) return ticks;
  const tick = value / ticks;
  const power = 10 ** Math.floor(Math.log10(tick));
  for (const step of [1, 2, 2.5, 5, 10]) if (step * power >= tick) return step * power * ticks;
  return 10 * power * ticks;
}

function drawChart(canvas, series, lines, now) {
  const ratio = window.devicePixelRatio || 1;
  const width = canvas.clientWidth || 400;
  const height = Number(canvas.getAttribute("height"));
  canvas.width = Math.round(width * ratio);
  canvas.height = Math.round(height * ratio);
  canvas.style.height = `${height}px`;
  const g = canvas.getContext("2d");
  g.setTransform(ratio, 0, 0, ratio, 0, 0);
  g.clearRect(0, 0, width, height);
  const left = 44, right = 8, top = 8, bottom = 20;
  const plotW = width - left - right, plotH = height - top - bottom;
  let peak = 0;
  for (const p of series) for (const line of lines) peak = Math.max(peak, line.value(p) ?? 0);
  const yMax = niceMax(peak * 1.1, 4);
  const x = (t) => left + plotW * (1 - (now - t) / WINDOW_S);
  const y = (v) => top + plotH * (1 - v / yMax);
  g.font = "11px system-ui, sans-serif";
  g.fillStyle = COLORS.grey;
  g.strokeStyle = "#eaeef2";
  g.lineWidth = 1;
  for (let i = 0; i <= 4; i++) {
    const v = (yMax * i) / 4;
    g.beginPath(); g.moveTo(left, y(v)); g.lineTo(left + plotW, y(v)); g.stroke();
    g.textAlign = "right"; g.textBaseline = "middle";
    g.fillText(v >= 100 ? Math.round(v) : Number(v.toPrecision(3)), left - 6, y(v));
  }
  g.textBaseline = "top";
  for (let m = 5; m >= 0; m--) {
    g.textAlign = m === 5 ? "left" : m === 0 ? "right" : "center";
    g.fillText(m ? `-${m} min` : "now", x(now - m * 60), top + plotH + 4);
  }
  for (const line of lines) {
    g.strokeStyle = line.color;
    g.lineWidth = 1.8;
    g.beginPath();
    let previous = null;
    for (const p of series) {
      const v = line.value(p);
      if (v === null || v === undefined || p.t < now - WINDOW_S) { previous = null; continue; }
      const gap = previous !== null && p.t - previous > 3;
      if (previous === null || gap) g.moveTo(x(p.t), y(v)); else g.lineTo(x(p.t), y(v));
      previous = p.t;
    }
    g.stroke();
  }
}

function legend(id, lines) {
  $(id).replaceChildren(...lines.map((line) => {
    const swatch = el("i");
    swatch.style.background = line.color;
    return el("span", {}, swatch, line.label);
  }));
}

function renderCharts(live) {
  const now = Date.now() / 1000;
  const series = live.series;
  const master = live.role === "master";
  const rate = master
    ? [{ label: "acknowledged", color: COLORS.blue, value: (p) => p.appends_per_s },
       { label: "refused or failed", color: COLORS.red, value: (p) => p.refused_per_s }]
    : [{ label: "entries received", color: COLORS.blue, value: (p) => p.entries_per_s },
       { label: "duplicates ignored", color: COLORS.orange, value: (p) => p.duplicates_per_s }];
  $("rate-title").textContent = master ? "Appends per second" : "Entries received per second";
  if (!live.metrics && master) $("rate-title").textContent += " (metrics are off on this node)";
  legend("rate-legend", rate);
  drawChart($("rate-chart"), series, rate, now);
  $("latency-card").hidden = !master;
  if (master) {
    const latency = [
      { label: "p50", color: COLORS.green, value: (p) => p.latency_ms && p.latency_ms.p50 },
      { label: "mean", color: COLORS.blue, value: (p) => p.latency_ms && p.latency_ms.mean },
      { label: "p99", color: COLORS.orange, value: (p) => p.latency_ms && p.latency_ms.p99 },
    ];
    legend("latency-legend", latency);
    drawChart($("latency-chart"), series, latency, now);
  }
}

// --- entries and events ------------------------------------------------------------------------
function renderLatest(live) {
  const items = live.latest.map((e) => el("li", { "data-seq": e.seq },
    el("span", { class: "seq" }, `#${e.seq}`), e.message.length > 200 ? `${e.message.slice(0, 200)}…` : e.message));
  $("latest").replaceChildren(...(items.length ? items : [el("li", { class: "muted" }, "the log is empty")]));
}

function renderEvents(live) {
  const items = live.events.map((e) => el("li", { class: `level-${e.level}`, "data-kind": e.kind },
    el("time", {}, clock(e.t)), e.text));
  $("events").replaceChildren(...items);
}

// --- the append form (master only) -------------------------------------------------------------
function renderForm(live) {
  const master = live.role === "master";
  $("append-card").hidden = !master;
  if (!master) return;
  const nodes = live.health.secondaries.length + 1;
  if (wOptionsFor === nodes) return;
  wOptionsFor = nodes;
  const choices = [...Array(nodes).keys()].map((i) => String(i + 1)).concat(["majority", "all"]);
  $("append-w").replaceChildren(...choices.map((w) => el("option", { value: w }, w)));
}

async function append(event) {
  event.preventDefault();
  const w = $("append-w").value;
  const body = { message: $("append-message").value, w: /^\d+$/.test(w) ? Number(w) : w };
  const timeout = $("append-timeout").value;
  if (timeout) body.timeout = Number(timeout);
  const result = $("append-result");
  result.className = "muted";
  result.textContent = `appending with w=${w}…`;
  const started = performance.now();
  try {
    const answer = await fetch("messages", {
      method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body),
    });
    const data = await answer.json();
    const ms = (performance.now() - started).toFixed(1);
    if (answer.status === 201) {
      result.className = "ok";
      result.textContent = `seq ${data.seq} acknowledged by ${data.acks} nodes (w=${data.w}) in ${ms} ms`;
      $("append-message").value = "";
    } else {
      result.className = "error";
      result.textContent = `${answer.status} ${data.error}: ${data.detail}`;
    }
  } catch (error) {
    result.className = "error";
    result.textContent = `no answer: ${error}`;
  }
}

// --- polling -----------------------------------------------------------------------------------
function setConnection(ok, problem) {
  const conn = $("conn");
  if (ok) {
    lastAnswerAt = Date.now();
    conn.className = "conn";
    conn.textContent = `updated ${new Date().toLocaleTimeString([], { hour12: false })}`;
  } else {
    conn.className = "conn down";
    const since = lastAnswerAt ? ` since ${new Date(lastAnswerAt).toLocaleTimeString([], { hour12: false })}` : "";
    conn.textContent = `no answer from this node${since} (${problem})`;
  }
}

function render(live) {
  document.title = `${live.name} · replog`;
  $("node-name").textContent = live.name;
  $("role").textContent = live.role;
  $("epoch").textContent = live.health && live.health.epoch !== undefined ? `epoch ${live.health.epoch}` : "";
  renderNodes(live);
  renderForm(live);
  renderLatest(live);
  renderEvents(live);
  renderCharts(live);
  document.body.dataset.ready = "true";
}

async function poll() {
  if (polling) return;
  polling = true;
  try {
    const answer = await fetch("ops/live", { cache: "no-store", headers: { Accept: "application/json" } });
    const live = await answer.json();
    if (!answer.ok) throw new Error(`${answer.status} ${live.error || ""}`.trim());
    render(live);
    setConnection(true);
  } catch (error) {
    setConnection(false, error.message || String(error));
  } finally {
    polling = false;
  }
}

$("append-form").addEventListener("submit", append);
poll();
setInterval(poll, POLL_MS);
