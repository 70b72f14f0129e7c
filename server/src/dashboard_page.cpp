// GET /dashboard: Online Aurora's live view. One self-contained page (inline CSS and JS, no fonts,
// scripts or images from elsewhere) that polls /v1/aurora/plan once a second and draws the expert-
// load heatmap (layers x experts, owner rank marked), the rank x rank traffic matrix of the chosen
// layer, the planner's predicted MoE step time against a fresh plan's over time with plan changes,
// per-rank times and per-layer all-to-all times. With an API key, the key is read from the URL
// fragment (#key=...) or typed in, kept in sessionStorage, and sent as a bearer token.
#include "aurora_routes.hpp"

namespace aurora::server {

namespace {

const char kPage[] = R"AURORA(<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>Aurora: online plan</title>
<style>
body{font:13px/1.4 system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:0;background:#f6f7f9;color:#1d2330}
header{background:#1d2330;color:#fff;padding:10px 18px;display:flex;gap:22px;align-items:baseline;flex-wrap:wrap}
header h1{font-size:16px;margin:0}header .kv b{font-weight:600}
main{display:grid;grid-template-columns:repeat(auto-fit,minmax(430px,1fr));gap:14px;padding:14px}
section{background:#fff;border:1px solid #dde1e7;border-radius:6px;padding:10px 12px}
section h2{font-size:13px;margin:0 0 8px;text-transform:uppercase;letter-spacing:.04em;color:#56607a}
table{border-collapse:collapse;width:100%}td,th{padding:2px 6px;text-align:right;border-bottom:1px solid #eef0f3}
th{color:#56607a;font-weight:500}td:first-child,th:first-child{text-align:left}
button{font:inherit;padding:3px 10px;border:1px solid #8a93a8;background:#fff;border-radius:4px;cursor:pointer}
#status{color:#b00020}#decision{color:#c9d1e0}svg text{font-size:10px;fill:#56607a}
.legend span{display:inline-block;width:10px;height:10px;margin:0 3px 0 10px;vertical-align:middle}
</style></head><body>
<header><h1>Aurora &middot; online plan</h1>
<span class="kv">version <b id="plan-version">-</b></span>
<span class="kv">replan <b id="replan-mode">-</b></span>
<span class="kv">order <b id="order-source">-</b></span>
<span class="kv">recovered <b id="recovered">-</b></span>
<span class="kv">steps/s <b id="steps">-</b></span>
<span class="kv">migrations <b id="migrations">-</b></span>
<span class="kv" id="frozen"></span>
<span class="kv" id="decision"></span>
<span class="kv"><button id="b-trigger">trigger</button> <button id="b-freeze">freeze</button> <button id="b-unfreeze">unfreeze</button></span>
<span id="status"></span>
<span id="keybox" hidden>API key <input id="key" type="password" size="20"> <button id="b-key">use</button></span>
</header>
<main>
<section><h2>Expert load (tokens per step), owner rank in each cell</h2>
<div>model <select id="model"></select> layer <select id="layer"></select></div>
<svg id="heatmap" data-live="0" width="100%" height="160"></svg></section>
<section><h2>Traffic matrix of the chosen layer (dispatch bytes per step, src &rarr; dst)</h2>
<svg id="traffic" data-live="0" width="100%" height="200"></svg></section>
<section><h2>Predicted MoE step time: plan in force vs a fresh plan</h2>
<svg id="timeline" width="100%" height="200"></svg>
<div class="legend"><span style="background:#d1495b"></span>in force<span style="background:#2e86ab"></span>fresh plan<span style="background:#999"></span>plan change</div></section>
<section><h2>Plan changes</h2><table id="history"><thead><tr><th>t (s)</th><th>version</th><th>moved</th><th>before (&micro;s)</th><th>after (&micro;s)</th><th>reason</th></tr></thead><tbody></tbody></table></section>
<section><h2>Ranks (per step)</h2><table id="ranks"><thead><tr><th>rank</th><th>speed</th><th>expert ms</th><th>exchange ms</th><th>rows</th></tr></thead><tbody></tbody></table></section>
<section><h2>All-to-all per layer (last step, &micro;s)</h2><table id="layers"><thead><tr><th>layer</th><th>predicted</th><th>measured</th><th>lower bound</th><th>balance</th><th>order</th><th>plan &micro;s</th><th>fit &micro;s</th></tr></thead><tbody></tbody></table></section>
</main>
<script>
"use strict";
const NS = "http://www.w3.org/2000/svg";
const $ = id => document.getElementById(id);
let key = sessionStorage.getItem("aurora-key") || "";
const m = location.hash.match(/key=([^&]+)/);
if (m) { key = decodeURIComponent(m[1]); sessionStorage.setItem("aurora-key", key); }
let plan = null;
function headers(json) {
  const h = {};
  if (key) h["Authorization"] = "Bearer " + key;
  if (json) h["Content-Type"] = "application/json";
  return h;
}
function el(tag, attrs, parent, text) {
  const e = document.createElementNS(NS, tag);
  for (const k in attrs) e.setAttribute(k, attrs[k]);
  if (text !== undefined) e.textContent = text;
  if (parent) parent.appendChild(e);
  return e;
}
function clear(node) { while (node.firstChild) node.removeChild(node.firstChild); }
function color(x) {  // 0..1 -> white .. deep red
  const t = Math.max(0, Math.min(1, x));
  const r = Math.round(255 - 45 * t), g = Math.round(255 - 200 * t), b = Math.round(255 - 190 * t);
  return "rgb(" + r + "," + g + "," + b + ")";
}
const rankColors = ["#2e86ab", "#d1495b", "#66a182", "#edae49", "#8d6a9f", "#00798c", "#b5651d", "#4f5d75"];
function fmt(x, d) { return (x === undefined || x === null) ? "-" : Number(x).toFixed(d); }
function model() { return plan && plan.models[Number($("model").value) || 0]; }
function fillSelect(sel, values) {
  const old = sel.value;
  if (sel.options.length !== values.length) {
    sel.innerHTML = "";
    values.forEach((v, i) => { const o = document.createElement("option"); o.value = i; o.textContent = v; sel.appendChild(o); });
  }
  if (old !== "" && Number(old) < values.length) sel.value = old;
}
function drawHeatmap(mo) {
  const svg = $("heatmap"); clear(svg);
  if (!mo || mo.layers.length === 0) return;
  const E = mo.num_experts, L = mo.layers.length;
  const W = svg.clientWidth || 600, left = 44, top = 16;
  const cw = Math.max(8, Math.floor((W - left - 8) / E)), ch = 26;
  svg.setAttribute("height", top + L * ch + 8);
  for (let e = 0; e < E; e++) el("text", {x: left + e * cw + cw / 2, y: 11, "text-anchor": "middle"}, svg, e);
  mo.layers.forEach((ly, row) => {
    const max = Math.max(1e-9, ...ly.expert_load);
    el("text", {x: 2, y: top + row * ch + ch / 2 + 3}, svg, "layer " + ly.layer);
    for (let e = 0; e < E; e++) {
      const load = ly.expert_load[e] || 0, owner = ly.owner[e];
      const g = el("g", {}, svg);
      el("rect", {class: "cell", x: left + e * cw, y: top + row * ch, width: cw - 1, height: ch - 1, fill: color(load / max),
                  stroke: rankColors[owner % rankColors.length], "stroke-width": 2,
                  "data-layer": ly.layer, "data-expert": e, "data-load": load.toFixed(3), "data-owner": owner}, g);
      el("title", {}, g, "layer " + ly.layer + ", expert " + e + ": " + load.toFixed(2) + " tokens/step on rank " + owner);
      if (cw >= 14) el("text", {x: left + e * cw + cw / 2, y: top + row * ch + ch / 2 + 3, "text-anchor": "middle",
                                 style: load / max > 0.55 ? "fill:#fff" : ""}, g, owner);
    }
  });
  svg.setAttribute("data-live", "1");
  svg.setAttribute("data-version", plan.plan_version);
}
function drawTraffic(mo) {
  const svg = $("traffic"); clear(svg);
  if (!mo || mo.layers.length === 0) return;
  const ly = mo.layers[Number($("layer").value) || 0] || mo.layers[0];
  const n = mo.num_ranks, size = Math.min(36, Math.floor(170 / n)), left = 50, top = 20;
  svg.setAttribute("height", top + n * size + 10);
  const max = Math.max(1e-9, ...ly.traffic_bytes);
  for (let d = 0; d < n; d++) el("text", {x: left + d * size + size / 2, y: 14, "text-anchor": "middle"}, svg, "dst " + d);
  for (let s = 0; s < n; s++) {
    el("text", {x: 4, y: top + s * size + size / 2 + 3}, svg, "src " + s);
    for (let d = 0; d < n; d++) {
      const v = ly.traffic_bytes[s * n + d];
      const g = el("g", {}, svg);
      el("rect", {class: "tcell", x: left + d * size, y: top + s * size, width: size - 1, height: size - 1,
                  fill: s === d ? "#e8eaee" : color(v / max), "data-bytes": v}, g);
      el("title", {}, g, "rank " + s + " -> rank " + d + ": " + Math.round(v) + " bytes/step" + (s === d ? " (local)" : ""));
    }
  }
  el("text", {x: left + n * size + 10, y: top + 12}, svg, "layer " + ly.layer + ", strategy " + (ly.order_strategy || "-"));
  el("text", {x: left + n * size + 10, y: top + 26}, svg, "rank balance " + fmt(ly.rank_balance, 2));
  svg.setAttribute("data-live", "1");
}
function drawTimeline() {
  const svg = $("timeline"); clear(svg);
  const pts = plan.timeline;
  if (!pts.length) { el("text", {x: 10, y: 20}, svg, "waiting for the planner"); return; }
  const W = svg.clientWidth || 600, H = 200, l = 50, r = 10, t = 10, b = 24;
  const t0 = pts[0].time_s, t1 = Math.max(t0 + 1, pts[pts.length - 1].time_s);
  const ymax = Math.max(1e-12, ...pts.map(p => Math.max(p.current_s, p.fresh_s))) * 1.1;
  const X = x => l + (x - t0) / (t1 - t0) * (W - l - r), Y = y => H - b - y / ymax * (H - t - b);
  el("line", {x1: l, y1: H - b, x2: W - r, y2: H - b, stroke: "#aaa"}, svg);
  el("text", {x: 2, y: t + 8}, svg, (ymax * 1e6).toFixed(0) + " \u00b5s");
  el("text", {x: l, y: H - 6}, svg, t0.toFixed(0) + " s");
  el("text", {x: W - r, y: H - 6, "text-anchor": "end"}, svg, t1.toFixed(0) + " s");
  for (const c of plan.history) {
    if (c.time_s < t0) continue;
    el("line", {x1: X(c.time_s), x2: X(c.time_s), y1: t, y2: H - b, stroke: "#999", "stroke-dasharray": "4 3", class: "change"}, svg);
  }
  for (const [k, col] of [["current_s", "#d1495b"], ["fresh_s", "#2e86ab"]]) {
    el("polyline", {fill: "none", stroke: col, "stroke-width": 1.5, points: pts.map(p => X(p.time_s) + "," + Y(p[k])).join(" ")}, svg);
  }
}
function rows(id, data) {
  const body = $(id).tBodies[0]; body.innerHTML = "";
  for (const cells of data) {
    const tr = document.createElement("tr");
    for (const c of cells) { const td = document.createElement("td"); td.textContent = c; tr.appendChild(td); }
    body.appendChild(tr);
  }
}
function render() {
  $("plan-version").textContent = plan.plan_version;
  $("replan-mode").textContent = plan.replan;
  $("order-source").textContent = plan.order_source;
  $("recovered").textContent = fmt(100 * plan.planner.recovered_fraction, 1) + "%";
  $("steps").textContent = fmt(plan.steps_per_second, 1);
  $("migrations").textContent = plan.expert_migrations_total + (plan.migration.in_progress ?
      " (moving: layer " + plan.migration.layers_done + "/" + plan.migration.layers_total + ")" : "");
  $("frozen").textContent = plan.frozen ? "FROZEN" : "";
  $("decision").textContent = plan.enabled ? plan.planner.last_decision : "online planner off (one rank)";
  fillSelect($("model"), plan.models.map(x => x.name));
  const mo = model();
  fillSelect($("layer"), mo ? mo.layers.map(x => "layer " + x.layer) : []);
  drawHeatmap(mo); drawTraffic(mo); drawTimeline();
  rows("history", plan.history.slice().reverse().map(c => [fmt(c.time_s, 1), c.version, c.moved_experts,
      fmt(c.predicted_before_s * 1e6, 1), fmt(c.predicted_after_s * 1e6, 1), c.reason]));
  rows("ranks", mo ? mo.ranks.map((r, i) => [i, fmt(r.compute_speed, 2), fmt(r.expert_seconds_per_step * 1e3, 3),
      fmt(r.exchange_seconds_per_step * 1e3, 3), fmt(r.rows_per_step, 1)]) : []);
  rows("layers", mo ? mo.layers.map(x => [x.layer, fmt(x.a2a_predicted_s * 1e6, 2), fmt(x.a2a_measured_s * 1e6, 1),
      fmt(x.a2a_lower_bound_s * 1e6, 2), fmt(x.load_balance, 2), x.order_source, fmt(x.plan_us, 1), fmt(x.fit_us, 1)]) : []);
}
async function poll() {
  try {
    const res = await fetch("/v1/aurora/plan", {headers: headers(false), cache: "no-store"});
    if (res.status === 401) { $("keybox").hidden = false; $("status").textContent = "API key required"; return; }
    if (!res.ok) { $("status").textContent = "HTTP " + res.status; return; }
    plan = await res.json();
    $("status").textContent = "";
    render();
  } catch (e) { $("status").textContent = "offline: " + e; }
}
async function control(action) {
  const res = await fetch("/v1/aurora/replan", {method: "POST", headers: headers(true), body: JSON.stringify({action})});
  const body = await res.json().catch(() => ({}));
  $("status").textContent = res.ok ? "" : (body.error ? body.error.message : "HTTP " + res.status);
  poll();
}
$("b-trigger").onclick = () => control("trigger");
$("b-freeze").onclick = () => control("freeze");
$("b-unfreeze").onclick = () => control("unfreeze");
$("b-key").onclick = () => { key = $("key").value; sessionStorage.setItem("aurora-key", key); $("keybox").hidden = true; poll(); };
$("model").onchange = () => plan && render();
$("layer").onchange = () => plan && render();
poll();
setInterval(poll, 1000);
</script></body></html>
)AURORA";

}  // namespace

const std::string& dashboard_html() {
  static const std::string page(kPage);
  return page;
}

}  // namespace aurora::server
