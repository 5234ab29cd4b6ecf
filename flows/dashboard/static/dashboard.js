// The dashboard page: each panel reads its own /api/ endpoint, and /api/status is polled every
// second; a panel is read again only when the latest time of one of its tables moved, so new results
// show within about a second and a half of reaching the database, without reloading the page.

import { barChart, fmtDateTime, fmtNumber, fmtTime, htmlEl, lineChart, parseTime } from "./charts.js";

const POLL_MS = 1000;
const state = {
  leaderboardWindow: "", // "" follows the latest closed window
  funnelWindow: "",
  product: null, // chosen by a click or a search; until then the leaderboard's top product
  productChosen: false,
  metric: "revenue",
  category: "*",
  triggerType: "",
  seen: {}, // stream -> latest time /api/status reported
  data: {}, // panel -> the last JSON it drew (to redraw on resize)
};

const $ = (selector) => document.querySelector(selector);

class ApiError extends Error {}

async function api(path, params = {}) {
  const query = new URLSearchParams(Object.entries(params).filter(([, v]) => v !== "" && v !== null));
  const response = await fetch(`${path}${query.size ? `?${query}` : ""}`, { cache: "no-store" });
  const body = await response.json();
  if (!response.ok) throw new ApiError(body.error || `${response.status} ${response.statusText}`);
  return body;
}

function showEmpty(panel, message) {
  const box = panel.querySelector(":scope > .empty");
  box.hidden = !message;
  box.textContent = message || "";
  panel.classList.toggle("is-empty", Boolean(message));
}

function fillSelect(select, values, current, latestLabel) {
  const wanted = [["", latestLabel], ...values.map((v) => [v, fmtDateTime(parseTime(v))])];
  const now = [...select.options].map((o) => [o.value, o.textContent]);
  if (JSON.stringify(now) !== JSON.stringify(wanted)) {
    select.replaceChildren(...wanted.map(([value, text]) => htmlEl("option", { value }, text)));
  }
  select.value = current;
}

function windowText(start, end) {
  if (!start) return "";
  return `window ${fmtDateTime(parseTime(start))} – ${fmtTime(parseTime(end), true)} UTC`;
}

// -- panels -------------------------------------------------------------------------------------

async function drawLeaderboard() {
  const panel = $("#leaderboard");
  const data = await api("/api/leaderboard", { window: state.leaderboardWindow });
  showEmpty(panel, data.message);
  fillSelect($("#leaderboard-window"), data.windows, state.leaderboardWindow, "latest closed (live)");
  const when = $("#leaderboard-when");
  when.textContent = windowText(data.window_start, data.window_end);
  when.dataset.window = data.window_start || "";
  const body = $("#leaderboard-table tbody");
  body.replaceChildren(...data.rows.map((row) => {
    const tr = htmlEl("tr", { "data-product": row.product_id, tabindex: "0" });
    if (row.product_id === state.product) tr.classList.add("chosen");
    htmlEl("td", {}, String(row.rank), tr);
    htmlEl("td", { class: "id" }, row.product_id, tr);
    htmlEl("td", { class: "num" }, fmtNumber(row.revenue, 2), tr);
    htmlEl("td", { class: "num" }, fmtNumber(row.units), tr);
    htmlEl("td", { class: "num" }, fmtNumber(row.purchases), tr);
    return tr;
  }));
  if (!state.productChosen && data.rows.length && data.rows[0].product_id !== state.product) {
    state.product = data.rows[0].product_id;
    await Promise.all([drawProduct(), drawRecommendations()]);
  }
}

async function drawSeries() {
  const panel = $("#series");
  const data = await api("/api/timeseries", { metric: state.metric, category: state.category });
  state.data.series = data;
  showEmpty(panel, data.message);
  const select = $("#series-category");
  const categories = data.categories.length ? data.categories : ["*"];
  const options = categories.map((c) => [c, c === "*" ? "all (*)" : c]);
  if (JSON.stringify([...select.options].map((o) => o.value)) !== JSON.stringify(categories)) {
    select.replaceChildren(...options.map(([value, text]) => htmlEl("option", { value }, text)));
  }
  select.value = state.category;
  paintSeries();
  const anomalies = await api("/api/anomalies", { limit: 8 });
  $("#anomalies-table tbody").replaceChildren(...anomalies.rows.map((a) => {
    const tr = htmlEl("tr", { class: a.direction, tabindex: "0", "data-metric": a.metric, "data-category": a.category,
      "data-bucket": a.bucket_start });
    htmlEl("td", {}, fmtDateTime(parseTime(a.bucket_start)), tr);
    htmlEl("td", {}, `${a.metric} · ${a.category}`, tr);
    htmlEl("td", { class: "num" }, fmtNumber(a.actual, 2), tr);
    htmlEl("td", { class: "num" }, fmtNumber(a.expected, 2), tr);
    htmlEl("td", { class: "num" }, fmtNumber(a.score, 1), tr);
    htmlEl("td", {}, a.direction === "up" ? "▲ up" : "▼ down", tr);
    return tr;
  }));
  if (!anomalies.rows.length) {
    const tr = htmlEl("tr");
    htmlEl("td", { colspan: 6, class: "none" }, anomalies.message || "none", tr);
    $("#anomalies-table tbody").replaceChildren(tr);
  }
}

function paintSeries() {
  const data = state.data.series;
  if (!data) return;
  const at = (p) => parseTime(p.bucket_start);
  const points = data.points;
  const pick = (key) => points.map((p) => [at(p), p[key]]);
  const expected = points.map((p) => [at(p), p.trend === null || p.seasonal === null ? null : p.trend + p.seasonal]);
  const digits = data.metric === "revenue" ? 2 : 0;
  const markers = data.anomalies.map((a) => ({
    t: parseTime(a.bucket_start),
    v: a.actual,
    cls: `anomaly ${a.direction}`,
    data: { "data-bucket": a.bucket_start, "data-score": a.score, "data-direction": a.direction },
    label: `anomaly at ${fmtDateTime(parseTime(a.bucket_start))}: ${fmtNumber(a.actual, digits)} against `
      + `${fmtNumber(a.expected, digits)} expected, score ${fmtNumber(a.score, 1)} (${a.direction})`,
  }));
  lineChart($("#series-chart"), {
    series: [
      { name: data.metric, cls: "s-value", points: pick("value") },
      { name: "moving average", cls: "s-ma", points: pick("moving_avg") },
      { name: "trend", cls: "s-trend", points: pick("trend") },
      { name: "trend + seasonal", cls: "s-expected", points: expected },
    ],
    markers,
    height: 240,
  });
  lineChart($("#series-parts"), {
    series: [
      { name: "seasonal", cls: "s-seasonal", points: pick("seasonal") },
      { name: "residual", cls: "s-residual", points: pick("residual") },
    ],
    height: 140,
  });
}

async function drawProduct() {
  const panel = $("#product");
  if (!state.product) {
    showEmpty(panel, "no product yet: pick one from the leaderboard, or search");
    return;
  }
  const data = await api("/api/trends", { product_id: state.product });
  state.data.product = data;
  $("#product-name").textContent = `product ${data.product_id}`;
  showEmpty(panel, data.message);
  paintProduct();
}

function paintProduct() {
  const data = state.data.product;
  if (!data) return;
  const times = data.rows.map((r) => parseTime(r.window_start));
  const values = (key) => data.rows.map((r) => r[key]);
  barChart($("#product-counts"), {
    times,
    series: [
      { name: "views", cls: "s-views", values: values("views") },
      { name: "carts", cls: "s-carts", values: values("carts") },
      { name: "purchases", cls: "s-purchases", values: values("purchases") },
    ],
    height: 160,
  });
  lineChart($("#product-revenue"), {
    series: [{ name: "revenue", cls: "s-value", points: data.rows.map((r) => [parseTime(r.window_start), r.revenue]) }],
    height: 130,
    zero: true,
  });
}

async function drawFunnel() {
  const panel = $("#funnel");
  const data = await api("/api/funnel", { window: state.funnelWindow });
  showEmpty(panel, data.message);
  fillSelect($("#funnel-window"), data.windows, state.funnelWindow, "latest closed (live)");
  $("#funnel-when").textContent = windowText(data.window_start, data.window_end);
  const rate = (value, parent) => {
    const td = htmlEl("td", { class: "rate" }, null, parent);
    const bar = htmlEl("span", { class: "bar" }, null, td);
    bar.style.width = `${Math.round((value || 0) * 100)}%`;
    htmlEl("span", { class: "pct" }, value === null ? "–" : `${fmtNumber(value * 100, 1)}%`, td);
  };
  $("#funnel-table tbody").replaceChildren(...data.rows.map((row) => {
    const tr = htmlEl("tr", row.category === "*" ? { class: "all" } : {});
    htmlEl("td", {}, row.category === "*" ? "all (*)" : row.category, tr);
    htmlEl("td", { class: "num" }, fmtNumber(row.viewed), tr);
    rate(row.view_to_cart, tr);
    rate(row.cart_to_purchase, tr);
    htmlEl("td", { class: "num" }, `${fmtNumber(row.conversion * 100, 1)}%`, tr);
    const median = row.median_time_to_purchase_s;
    htmlEl("td", { class: "num" }, median === null ? "–" : `${fmtNumber(median / 60, 1)} min`, tr);
    return tr;
  }));
}

async function drawTriggers() {
  const panel = $("#marketing");
  const data = await api("/api/triggers", { type: state.triggerType, limit: 30 });
  showEmpty(panel, data.message);
  $("#triggers-feed").replaceChildren(...data.rows.map((t) => {
    const li = htmlEl("li", { class: t.trigger_type, "data-trigger": t.trigger_id });
    const kind = t.trigger_type === "cart_abandoned" ? "abandoned cart" : "high-value customer";
    htmlEl("span", { class: "tag" }, kind, li);
    htmlEl("span", { class: "who" }, `user ${t.user_id}`, li);
    htmlEl("span", { class: "num" }, fmtNumber(t.value, 2), li);
    htmlEl("time", { datetime: t.triggered_at }, fmtDateTime(parseTime(t.triggered_at)), li);
    if (t.products && t.products.length) htmlEl("span", { class: "products" }, `products ${t.products.join(", ")}`, li);
    return li;
  }));
}

async function drawRecommendations() {
  const panel = $("#recommendations");
  if (!state.product) {
    showEmpty(panel, "no product yet: pick one from the leaderboard, or search");
    return;
  }
  const data = await api("/api/recommendations", { product_id: state.product });
  $("#reco-for").textContent = data.as_of
    ? `bought with product ${data.product_id} (as of ${fmtDateTime(parseTime(data.as_of))})`
    : `product ${data.product_id}`;
  showEmpty(panel, data.message);
  $("#reco-list").replaceChildren(...data.related.map((r) => {
    const li = htmlEl("li", { "data-product": r.product_id, tabindex: "0" });
    htmlEl("span", { class: "id" }, r.product_id, li);
    const bar = htmlEl("span", { class: "bar" }, null, li);
    bar.style.width = `${Math.round(r.score * 100)}%`;
    htmlEl("span", { class: "num" }, fmtNumber(r.score, 3), li);
    return li;
  }));
}

async function drawPipeline() {
  const panel = $("#pipeline");
  const [monitoring, quality] = await Promise.all([api("/api/monitoring"), api("/api/quality")]);
  state.data.pipeline = { monitoring, quality };
  showEmpty(panel, monitoring.message);
  const qualityEmpty = panel.querySelector(".quality-empty");
  qualityEmpty.hidden = !quality.message;
  qualityEmpty.textContent = quality.message || "";
  paintPipeline();
}

function paintPipeline() {
  const { monitoring, quality } = state.data.pipeline || {};
  if (!monitoring) return;
  const rows = monitoring.rows;
  const workers = [...new Set(rows.map((r) => r.worker))].sort((a, b) => (a === "total") - (b === "total") || a.localeCompare(b, "en", { numeric: true }));
  const line = (worker, key) => rows.filter((r) => r.worker === worker).map((r) => [parseTime(r.interval_start), r[key]]);
  const total = rows.filter((r) => r.worker === "total");
  const last = total[total.length - 1];
  const figures = $("#pipeline-figures");
  figures.replaceChildren();
  if (last) {
    const figure = (label, value) => {
      const div = htmlEl("div", { class: "figure" }, null, figures);
      htmlEl("span", { class: "value" }, value, div);
      htmlEl("span", { class: "label" }, label, div);
    };
    figure("events/s", fmtNumber(last.events_per_s));
    figure("workers", String(last.workers));
    figure("latency p50 / p95 / p99 ms", [last.latency_p50_ms, last.latency_p95_ms, last.latency_p99_ms].map((v) => fmtNumber(v)).join(" / "));
    figure("watermark lag s", fmtNumber(last.watermark_lag_s, 1));
    figure("dead letters", fmtNumber(last.dead_letters));
    figure("late events", fmtNumber(last.late_events));
    figures.append(htmlEl("p", { class: "when" }, `interval ending ${fmtDateTime(parseTime(last.interval_end))}`));
  }
  lineChart($("#pipeline-rate"), {
    series: workers.map((w, i) => ({ name: w === "total" ? "total" : `worker ${w}`, cls: w === "total" ? "s-value" : `s-w${i % 6}`, points: line(w, "events_per_s") })),
    height: 160,
    zero: true,
  });
  lineChart($("#pipeline-latency"), {
    series: [
      { name: "p50", cls: "s-trend", points: line("total", "latency_p50_ms") },
      { name: "p95", cls: "s-ma", points: line("total", "latency_p95_ms") },
      { name: "p99", cls: "s-value", points: line("total", "latency_p99_ms") },
    ],
    height: 160,
    zero: true,
  });
  lineChart($("#pipeline-lag"), {
    series: [{ name: "watermark lag", cls: "s-value", points: line("total", "watermark_lag_s") }],
    height: 160,
  });
  if (quality) {
    barChart($("#pipeline-quality"), {
      times: quality.rows.map((r) => parseTime(r.window_start)),
      series: [
        { name: "late", cls: "s-carts", values: quality.rows.map((r) => r.late) },
        { name: "dead letters", cls: "s-purchases", values: quality.rows.map((r) => r.dead_letters) },
        { name: "duplicates", cls: "s-views", values: quality.rows.map((r) => r.duplicates) },
      ],
      height: 160,
    });
  }
}

// -- live updates -------------------------------------------------------------------------------

// Which panels read which tables (as /api/status names them).
const READERS = [
  [["leaderboard"], drawLeaderboard],
  [["timeseries", "anomalies"], drawSeries],
  [["trends"], drawProduct],
  [["funnel"], drawFunnel],
  [["triggers"], drawTriggers],
  [["recommendations"], drawRecommendations],
  [["monitoring", "quality"], drawPipeline],
];

function banner(message) {
  const box = $("#banner");
  box.hidden = !message;
  box.textContent = message || "";
}

async function run(draw) {
  try {
    await draw();
  } catch (error) {
    banner(error instanceof ApiError ? error.message : `could not read the dashboard's API: ${error.message}`);
  }
}

async function poll() {
  try {
    const status = await api("/api/status");
    const changed = new Set(Object.keys(status.streams)
      .filter((name) => JSON.stringify(status.streams[name]) !== JSON.stringify(state.seen[name])));
    state.seen = status.streams;
    banner(status.message);
    document.body.classList.toggle("no-results", Boolean(status.message));
    await Promise.all(READERS.filter(([tables]) => tables.some((t) => changed.has(t))).map(([, draw]) => run(draw)));
    const live = $("#live");
    live.textContent = `live · checked ${new Date().toISOString().slice(11, 19)} UTC`;
    live.classList.remove("stale");
  } catch (error) {
    const live = $("#live");
    live.textContent = `not updating: ${error.message}`;
    live.classList.add("stale");
  } finally {
    setTimeout(poll, POLL_MS);
  }
}

function choose(product) {
  state.product = product;
  state.productChosen = true;
  $("#product-search").value = product;
  document.querySelectorAll("#leaderboard-table tr.chosen").forEach((tr) => tr.classList.remove("chosen"));
  document.querySelectorAll(`#leaderboard-table tr[data-product="${CSS.escape(product)}"]`).forEach((tr) => tr.classList.add("chosen"));
  run(drawProduct);
  run(drawRecommendations);
}

function wire() {
  const pick = (event) => {
    const row = event.target.closest("[data-product]");
    if (row && (event.type === "click" || event.key === "Enter")) choose(row.dataset.product);
  };
  for (const list of ["#leaderboard-table", "#reco-list"]) {
    $(list).addEventListener("click", pick);
    $(list).addEventListener("keydown", pick);
  }
  $("#leaderboard-window").addEventListener("change", (e) => { state.leaderboardWindow = e.target.value; run(drawLeaderboard); });
  $("#funnel-window").addEventListener("change", (e) => { state.funnelWindow = e.target.value; run(drawFunnel); });
  $("#series-metric").addEventListener("change", (e) => { state.metric = e.target.value; state.category = "*"; run(drawSeries); });
  $("#series-category").addEventListener("change", (e) => { state.category = e.target.value; run(drawSeries); });
  const series = (event) => {
    const row = event.target.closest("tr[data-metric]");
    if (!row || !(event.type === "click" || event.key === "Enter")) return;
    state.metric = row.dataset.metric;
    state.category = row.dataset.category;
    $("#series-metric").value = state.metric;
    run(drawSeries);
  };
  $("#anomalies-table").addEventListener("click", series);
  $("#anomalies-table").addEventListener("keydown", series);
  $("#trigger-type").addEventListener("change", (e) => { state.triggerType = e.target.value; run(drawTriggers); });
  $("#product-form").addEventListener("submit", (e) => {
    e.preventDefault();
    const product = $("#product-search").value.trim();
    if (product) choose(product);
  });
  let typing;
  $("#product-search").addEventListener("input", (e) => {
    clearTimeout(typing);
    const q = e.target.value.trim();
    if (!q) return;
    typing = setTimeout(async () => {
      try {
        const found = await api("/api/products", { q, limit: 10 });
        $("#product-options").replaceChildren(...found.rows.map((r) => htmlEl("option", { value: r.product_id },
          `${fmtNumber(r.revenue, 2)} revenue, ${r.views} views`)));
      } catch (error) {
        banner(error.message);
      }
    }, 250);
  });
  let resizing;
  window.addEventListener("resize", () => {
    clearTimeout(resizing);
    resizing = setTimeout(() => { paintSeries(); paintProduct(); paintPipeline(); }, 150);
  });
}

wire();
poll();
