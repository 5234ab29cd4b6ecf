// Small SVG charts for the dashboard: time-axis lines with markers, and grouped bars.
// No library and nothing fetched: the page works offline. Charts are redrawn at the width of
// their box (on data and on resize), so text stays crisp from a phone to a laptop.
// Colours come from CSS classes (dashboard.css), never inline styles (the CSP forbids them).

const NS = "http://www.w3.org/2000/svg";
const MARGIN = { top: 10, right: 12, bottom: 26, left: 58 };

export function svgEl(name, attrs = {}, parent = null) {
  const node = document.createElementNS(NS, name);
  for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, String(value));
  if (parent) parent.appendChild(node);
  return node;
}

export function htmlEl(name, attrs = {}, text = null, parent = null) {
  const node = document.createElement(name);
  for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, String(value));
  if (text !== null) node.textContent = text;
  if (parent) parent.appendChild(node);
  return node;
}

const TIME_STEPS = [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400]
  .map((s) => s * 1000);

export function parseTime(iso) {
  return Date.parse(iso);
}

export function fmtTime(ms, seconds = false) {
  const d = new Date(ms);
  const two = (n) => String(n).padStart(2, "0");
  const hm = `${two(d.getUTCHours())}:${two(d.getUTCMinutes())}`;
  return seconds ? `${hm}:${two(d.getUTCSeconds())}` : hm;
}

export function fmtDateTime(ms) {
  const d = new Date(ms);
  return `${d.toISOString().slice(0, 10)} ${fmtTime(ms, d.getUTCSeconds() !== 0)} UTC`;
}

export function fmtNumber(value, digits = 0) {
  if (value === null || value === undefined || Number.isNaN(value)) return "–";
  return value.toLocaleString("en-US", { minimumFractionDigits: digits, maximumFractionDigits: digits });
}

export function fmtCompact(value) {
  if (value === null || value === undefined) return "–";
  const abs = Math.abs(value);
  if (abs >= 1e6) return `${(value / 1e6).toFixed(abs >= 1e7 ? 0 : 1)}M`;
  if (abs >= 1e4) return `${(value / 1e3).toFixed(abs >= 1e5 ? 0 : 1)}k`;
  if (abs >= 100 || Number.isInteger(value)) return value.toFixed(0);
  return value.toPrecision(3);
}

function nothing(box, host, series) {
  svgEl("text", { x: box.width / 2, y: box.height / 2, "text-anchor": "middle", class: "nothing" }, box.svg)
    .textContent = "no values yet";
  legend(host, series);
  return box.svg;
}

function niceTicks(min, max, count) {
  if (min === max) {
    const pad = Math.abs(min) * 0.1 || 1;
    min -= pad;
    max += pad;
  }
  const raw = (max - min) / Math.max(count, 1);
  const power = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * power).find((s) => s >= raw) || raw;
  const first = Math.floor(min / step) * step;
  const last = Math.ceil(max / step) * step;
  const ticks = [];
  for (let t = first; t <= last + step / 2; t += step) ticks.push(Number(t.toPrecision(12)));
  return ticks;
}

function timeTicks(t0, t1, count) {
  const step = TIME_STEPS.find((s) => (t1 - t0) / s <= count) || TIME_STEPS[TIME_STEPS.length - 1];
  const ticks = [];
  for (let t = Math.ceil(t0 / step) * step; t <= t1; t += step) ticks.push(t);
  return { ticks, seconds: step < 60000 };
}

function frame(host, height) {
  host.replaceChildren();
  const width = Math.max(host.clientWidth || 0, 280);
  const svg = svgEl("svg", { viewBox: `0 0 ${width} ${height}`, width, height, class: "chart", role: "img" }, host);
  return { svg, width, height, x0: MARGIN.left, x1: width - MARGIN.right, y0: height - MARGIN.bottom, y1: MARGIN.top };
}

function yAxis(box, ticks, scale, format) {
  const g = svgEl("g", { class: "axis" }, box.svg);
  for (const t of ticks) {
    const y = scale(t);
    svgEl("line", { x1: box.x0, x2: box.x1, y1: y, y2: y, class: t === 0 ? "zero" : "grid" }, g);
    svgEl("text", { x: box.x0 - 6, y: y + 4, "text-anchor": "end" }, g).textContent = format(t);
  }
}

function legend(host, series) {
  const list = htmlEl("ul", { class: "legend" }, null, host);
  for (const s of series) {
    const item = htmlEl("li", {}, null, list);
    htmlEl("span", { class: `swatch ${s.cls}` }, null, item);
    item.append(s.name);
  }
}

function tooltip(host, box, xs, describe) {
  // A vertical rule and a small label follow the pointer to the nearest point.
  const rule = svgEl("line", { class: "hover-rule", y1: box.y1, y2: box.y0, x1: 0, x2: 0, visibility: "hidden" }, box.svg);
  const tip = htmlEl("div", { class: "tip", hidden: "" }, null, host);
  const area = svgEl("rect", { x: box.x0, y: box.y1, width: box.x1 - box.x0, height: box.y0 - box.y1,
    class: "hover-area" }, box.svg);
  const move = (event) => {
    const bounds = box.svg.getBoundingClientRect();
    const x = ((event.clientX - bounds.left) / bounds.width) * box.width;
    let best = 0;
    for (let i = 1; i < xs.length; i++) if (Math.abs(xs[i] - x) < Math.abs(xs[best] - x)) best = i;
    rule.setAttribute("x1", xs[best]);
    rule.setAttribute("x2", xs[best]);
    rule.setAttribute("visibility", "visible");
    tip.textContent = describe(best);
    tip.hidden = false;
    tip.style.left = `${Math.min(xs[best] / box.width, 0.7) * 100}%`;
  };
  area.addEventListener("pointermove", move);
  area.addEventListener("pointerleave", () => {
    tip.hidden = true;
    rule.setAttribute("visibility", "hidden");
  });
}

/**
 * A time-axis line chart.
 * spec: {series: [{name, cls, points: [[ms, value|null], ...]}], markers: [{t, v, cls, label}],
 *        height, format(value) -> text}
 * A null value breaks its line. Markers are drawn over the lines, each with a <title> (hover text).
 */
export function lineChart(host, spec) {
  const { series, markers = [], height = 220, format = fmtCompact } = spec;
  const box = frame(host, height);
  const times = series.flatMap((s) => s.points.map((p) => p[0]));
  const values = [...series.flatMap((s) => s.points.map((p) => p[1])), ...markers.map((m) => m.v)]
    .filter((v) => v !== null && Number.isFinite(v));
  if (!times.length || !values.length) return nothing(box, host, series);
  const t0 = Math.min(...times);
  const t1 = Math.max(...times, t0 + 1);
  const ticks = niceTicks(Math.min(...values, spec.zero ? 0 : Infinity), Math.max(...values), 4);
  const lo = ticks[0];
  const hi = ticks[ticks.length - 1];
  const x = (t) => box.x0 + ((t - t0) / (t1 - t0)) * (box.x1 - box.x0);
  const y = (v) => box.y0 - ((v - lo) / (hi - lo || 1)) * (box.y0 - box.y1);
  yAxis(box, ticks, y, format);
  const xt = timeTicks(t0, t1, Math.max(2, Math.floor((box.x1 - box.x0) / 80)));
  const axis = svgEl("g", { class: "axis" }, box.svg);
  for (const t of xt.ticks) {
    svgEl("text", { x: x(t), y: box.y0 + 17, "text-anchor": "middle" }, axis).textContent = fmtTime(t, xt.seconds);
  }
  for (const s of series) {
    let d = "";
    let pen = "M";
    for (const [t, v] of s.points) {
      if (v === null || !Number.isFinite(v)) {
        pen = "M";
        continue;
      }
      d += `${pen}${x(t).toFixed(1)},${y(v).toFixed(1)}`;
      pen = "L";
    }
    if (d) svgEl("path", { d, class: `line ${s.cls}` }, box.svg);
    // A value with no value beside it makes no line: a dot, so it still shows.
    const known = (i) => i >= 0 && i < s.points.length && s.points[i][1] !== null && Number.isFinite(s.points[i][1]);
    s.points.forEach(([t, v], i) => {
      if (known(i) && !known(i - 1) && !known(i + 1)) svgEl("circle", { cx: x(t), cy: y(v), r: 2.5, class: `dot ${s.cls}` }, box.svg);
    });
  }
  const xs = [...new Set(times)].sort((a, b) => a - b);
  tooltip(host, box, xs.map(x), (i) => {
    const t = xs[i];
    const parts = series.map((s) => {
      const point = s.points.find((p) => p[0] === t);
      return point && point[1] !== null ? `${s.name} ${format(point[1])}` : null;
    }).filter(Boolean);
    return `${fmtTime(t, xt.seconds)}  ${parts.join(" · ")}`;
  });
  const layer = svgEl("g", { class: "markers" }, box.svg);
  for (const m of markers) {
    const cx = x(m.t);
    const cy = y(m.v);
    const up = m.cls.includes("up");
    const r = 7;
    const points = up ? `${cx},${cy - r} ${cx - r},${cy + r * 0.7} ${cx + r},${cy + r * 0.7}`
      : `${cx},${cy + r} ${cx - r},${cy - r * 0.7} ${cx + r},${cy - r * 0.7}`;
    const mark = svgEl("polygon", { points, class: `marker ${m.cls}`, ...(m.data || {}) }, layer);
    svgEl("title", {}, mark).textContent = m.label;
  }
  legend(host, series);
  return box.svg;
}

/**
 * Grouped bars over time.
 * spec: {times: [ms...], series: [{name, cls, values: [...]}], height, format}
 */
export function barChart(host, spec) {
  const { times, series, height = 180, format = fmtCompact } = spec;
  const box = frame(host, height);
  if (!times.length) return nothing(box, host, series);
  const values = series.flatMap((s) => s.values).filter((v) => v !== null);
  const ticks = niceTicks(0, Math.max(...values, 1), 4);
  const hi = ticks[ticks.length - 1];
  const y = (v) => box.y0 - (v / (hi || 1)) * (box.y0 - box.y1);
  yAxis(box, ticks, y, format);
  const slot = (box.x1 - box.x0) / times.length;
  const bar = Math.max(1, (slot * 0.8) / series.length);
  const xs = times.map((_, i) => box.x0 + slot * (i + 0.5));
  series.forEach((s, j) => {
    const g = svgEl("g", { class: `bars ${s.cls}` }, box.svg);
    s.values.forEach((v, i) => {
      if (!v) return;
      const left = box.x0 + slot * i + slot * 0.1 + bar * j;
      svgEl("rect", { x: left.toFixed(1), y: y(v).toFixed(1), width: bar.toFixed(1),
        height: Math.max(0, box.y0 - y(v)).toFixed(1) }, g);
    });
  });
  const t0 = times[0];
  const t1 = times[times.length - 1];
  const xt = timeTicks(t0, Math.max(t1, t0 + 1), Math.max(2, Math.floor((box.x1 - box.x0) / 80)));
  const axis = svgEl("g", { class: "axis" }, box.svg);
  for (const t of xt.ticks) {
    const i = times.findIndex((u) => u >= t);
    if (i >= 0) svgEl("text", { x: xs[i], y: box.y0 + 17, "text-anchor": "middle" }, axis).textContent = fmtTime(t, xt.seconds);
  }
  tooltip(host, box, xs, (i) => `${fmtTime(times[i], xt.seconds)}  ${series.map((s) => `${s.name} ${format(s.values[i])}`).join(" · ")}`);
  legend(host, series);
  return box.svg;
}
