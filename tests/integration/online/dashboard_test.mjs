// Online Aurora's HTTP surface on a real server: the plan JSON, the replan controls and the
// online metrics behind the API key, and the dashboard page rendered by headless Chromium: the
// heatmap it draws must be the live expert loads and owners the plan JSON reports.
//
// usage: node dashboard_test.mjs /path/to/aurora      (CHROMIUM=/path overrides the browser)
import { spawn, execFileSync } from "node:child_process";
import { mkdtempSync, rmSync, existsSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import assert from "node:assert/strict";

const aurora = process.argv[2];
const KEY = "online-test-key";
const browser = process.env.CHROMIUM || ["/usr/bin/chromium", "/usr/bin/chromium-browser"].find(existsSync);
if (!browser) {
  console.error("online_dashboard_test: headless Chromium is required: install Debian's chromium package " +
                "(scripts/install-deps.sh does) or set CHROMIUM=/path/to/chromium");
  process.exit(1);
}

const server = spawn(aurora, ["serve", "--ranks", "4", "--port", "0", "--api-key", KEY, "--replan", "full",
                              "--replan-interval-ms", "100", "--replan-dwell-s", "0.5", "--replan-confirmations", "1",
                              "--stats-half-life-s", "1"], {stdio: ["ignore", "ignore", "pipe"]});
let log = "";
const port = await new Promise((resolve, reject) => {
  const timer = setTimeout(() => reject(new Error("no 'listening on' line:\n" + log)), 20000);
  server.stderr.on("data", chunk => {
    log += chunk;
    const m = log.match(/listening on [0-9.]+:(\d+)/);
    if (m) { clearTimeout(timer); resolve(Number(m[1])); }
  });
  server.on("exit", code => reject(new Error("server exited with " + code + ":\n" + log)));
});
const base = `http://127.0.0.1:${port}`;
const auth = {Authorization: `Bearer ${KEY}`};
let failed = false;

async function get(path, headers = auth) { return fetch(base + path, {headers}); }
async function post(path, body, headers = auth) {
  return fetch(base + path, {method: "POST", headers: {...headers, "Content-Type": "application/json"}, body: JSON.stringify(body)});
}
async function step(name, fn) {
  try { await fn(); console.log("ok   " + name); } catch (e) { failed = true; console.log("FAIL " + name + "\n" + (e.stack || e)); }
}

try {
  for (let i = 0; i < 200; i++) {  // the model loads after the server listens
    const r = await get("/health", {}).catch(() => null);
    if (r && r.status === 200) break;
    await new Promise(r => setTimeout(r, 50));
  }

  await step("the key guards the plan and the controls; the static page is public", async () => {
    assert.equal((await get("/v1/aurora/plan", {})).status, 401);
    assert.equal((await post("/v1/aurora/replan", {action: "trigger"}, {})).status, 401);
    assert.equal((await get("/metrics", {})).status, 401);
    const page = await get("/dashboard", {});
    assert.equal(page.status, 200);
    assert.match(page.headers.get("content-type"), /text\/html/);
    const html = await page.text();
    // Self-contained: no external script, style, image or font; the only URL is the SVG namespace.
    assert.doesNotMatch(html, /<script[^>]+src=|<link|<img|@import|url\(/i);
    const urls = (html.match(/https?:\/\/[^"' )]+/g) || []).filter(u => u !== "http://www.w3.org/2000/svg");
    assert.deepEqual(urls, []);
  });

  // Live traffic: digits, so that a few experts per layer are hot.
  await Promise.all(Array.from({length: 12}, (_, i) => post("/v1/completions",
      {prompt: "31415 92653 58979 " + String(i * 7919), max_tokens: 24, ignore_eos: true}).then(r => r.text())));

  let plan;
  await step("GET /v1/aurora/plan: the deployment and the live statistics", async () => {
    const r = await get("/v1/aurora/plan");
    assert.equal(r.status, 200);
    plan = await r.json();
    assert.equal(plan.object, "aurora.plan");
    assert.equal(plan.enabled, true);
    assert.equal(plan.replan, "full");
    assert.equal(plan.models.length, 1);
    const m = plan.models[0];
    assert.equal(m.num_ranks, 4);
    assert.equal(m.layers.length, 4);
    for (const l of m.layers) {
      assert.equal(l.owner.length, 16);
      assert.equal(l.traffic_bytes.length, 16);
      assert.ok(l.expert_load.reduce((a, b) => a + b) > 0);
      assert.ok(l.load_balance > 1.5, "digits load few experts");
      assert.ok(l.a2a_lower_bound_s > 0 && l.a2a_predicted_s >= l.a2a_lower_bound_s);
    }
    assert.ok(plan.planner.runs_total >= 1);
  });

  await step("POST /v1/aurora/replan: freeze, errors name the field", async () => {
    let r = await post("/v1/aurora/replan", {action: "freeze"});
    assert.equal(r.status, 200);
    assert.equal((await r.json()).frozen, true);
    r = await post("/v1/aurora/replan", {action: "explode"});
    assert.equal(r.status, 400);
    assert.equal((await r.json()).error.param, "action");
    r = await post("/v1/aurora/replan", {act: "freeze"});
    assert.equal(r.status, 400);
    // Frozen and without traffic the numbers hold still, once a migration decided before the
    // freeze (one may be under way) has completed.
    for (let i = 0; i < 200; i++) {
      plan = await (await get("/v1/aurora/plan")).json();
      if (!plan.migration.in_progress) break;
      await new Promise(r => setTimeout(r, 25));
    }
    assert.equal(plan.migration.in_progress, false);
    assert.equal(plan.frozen, true);
  });

  await step("GET /metrics: plan version, balance, predicted/measured all-to-all and the bound, migrations", async () => {
    const text = await (await get("/metrics")).text();
    for (const name of ["aurora:plan_version ", 'aurora:expert_load_balance{model_name="aurora-embedded",layer="0"}',
                        "aurora:all_to_all_predicted_seconds{", "aurora:all_to_all_measured_seconds{",
                        "aurora:all_to_all_lower_bound_seconds{", "aurora:expert_migrations_total ",
                        "aurora:all_to_all_over_lower_bound{", "aurora:all_to_all_measured_over_lower_bound{",
                        "aurora:all_to_all_order_window{", 'aurora:all_to_all_order_cost_seconds{model_name="aurora-embedded",layer="0",source="live"}',
                        "aurora:rank_compute_speed{", "aurora:plan_recovered_ratio ", "aurora:replan_frozen 1"]) {
      assert.ok(text.includes(name), "missing " + name);
    }
    const version = Number(text.match(/^aurora:plan_version (\S+)$/m)[1]);
    assert.equal(version, plan.plan_version);
  });

  await step("headless Chromium renders the heatmap and the traffic matrix from the live plan", async () => {
    const profile = mkdtempSync(join(tmpdir(), "aurora-chromium-"));
    let dom;
    try {
      dom = execFileSync(browser, ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                                   "--disable-component-update", "--disable-sync", "--no-first-run",
                                   `--user-data-dir=${profile}`, "--virtual-time-budget=5000", "--dump-dom",
                                   `${base}/dashboard#key=${KEY}`],
                         {encoding: "utf8", timeout: 60000, stdio: ["ignore", "pipe", "ignore"]});
    } finally {
      rmSync(profile, {recursive: true, force: true});
    }
    assert.match(dom, /id="heatmap" data-live="1"/, "the heatmap was never drawn");
    assert.equal(dom.match(/id="plan-version">([^<]*)</)[1], String(plan.plan_version));
    assert.match(dom, /id="frozen">FROZEN</);
    const cells = [...dom.matchAll(/<rect class="cell"[^>]*>/g)].map(m => m[0]);
    assert.equal(cells.length, 4 * 16);
    const attr = (tag, name) => tag.match(new RegExp(name + '="([^"]*)"'))[1];
    const m = plan.models[0];
    for (const tag of cells) {
      const layer = m.layers.find(l => l.layer === Number(attr(tag, "data-layer")));
      const e = Number(attr(tag, "data-expert"));
      assert.equal(Number(attr(tag, "data-owner")), layer.owner[e]);
      assert.ok(Math.abs(Number(attr(tag, "data-load")) - layer.expert_load[e]) < 1e-3 + 1e-6 * layer.expert_load[e],
                `layer ${layer.layer} expert ${e}: page ${attr(tag, "data-load")}, plan ${layer.expert_load[e]}`);
    }
    assert.equal([...dom.matchAll(/<rect class="tcell"/g)].length, 16);
    assert.match(dom, /id="traffic" data-live="1"/);
  });

  await step("unfreeze and trigger", async () => {
    assert.equal((await post("/v1/aurora/replan", {action: "unfreeze"})).status, 200);
    const r = await post("/v1/aurora/replan", {action: "trigger"});
    assert.equal(r.status, 200);
    assert.equal((await r.json()).frozen, false);
  });
} finally {
  server.kill("SIGTERM");
  const code = await new Promise(resolve => server.on("exit", (c, s) => resolve(c ?? s)));
  if (code !== 0) { failed = true; console.log("server exit: " + code + "\n" + log); }
}
process.exit(failed ? 1 : 0);
