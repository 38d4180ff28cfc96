// tidemark dashboard, part 1: number formatting, tagged numbers and inline-SVG charts.
'use strict';

// How a metric's value is shown. Counts: integer with thousands commas ("1,234"); money: two
// decimals ("1,234.50"); rates: percent with one decimal ("23.4%"); ROAS: two decimals and "×".
const MONEY = new Set(['spend', 'revenue', 'revenue_by_channel', 'cac', 'cac_total']);
const RATE = new Set(['stickiness', 'retention_rate', 'funnel_conversion', 'ratio',
  'sliding_retention', 'monthly_retention_rate', 'new_user_growth_weekly']);
const TIMES = new Set(['roas_total']);

const esc = (s) => String(s).replace(/[&<>"']/g,
  (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' }[c]));

function fixed(v, digits) {
  const s = Math.abs(v).toFixed(digits);
  const [int, frac] = s.split('.');
  const sign = v < 0 && Number(s) !== 0 ? '-' : '';
  return sign + int.replace(/\B(?=(\d{3})+(?!\d))/g, ',') + (frac ? '.' + frac : '');
}

function fmt(metric, v) {
  if (v == null || !Number.isFinite(v)) return '–';
  if (RATE.has(metric)) return fixed(v * 100, 1) + '%';
  if (MONEY.has(metric)) return fixed(v, 2);
  if (TIMES.has(metric)) return fixed(v, 2) + '×';
  return fixed(Math.round(v), 0);
}

// Short axis labels: 1,234 -> "1.2k".
function compact(v) {
  const a = Math.abs(v);
  if (a >= 1e6) return fixed(v / 1e6, a >= 1e7 ? 0 : 1) + 'M';
  if (a >= 1e4) return fixed(v / 1e3, 0) + 'k';
  if (a >= 1e3) return fixed(v / 1e3, 1) + 'k';
  return String(Math.round(v * 100) / 100);
}

// The shown number of a row, tagged so tests (and people with dev tools) can trace it back.
function num(row, cls) {
  const c = cls ? ' ' + cls : '';
  return `<span class="n${c}" data-metric="${esc(row.metric)}" data-dims="${esc(row.dj)}">` +
    `${esc(fmt(row.metric, row.value))}</span>`;
}

// The same for a row that may be missing: a missing row reads as 0, or no data for quotients.
function numOr(row, metric, cls) {
  if (row) return num(row, cls);
  const none = RATE.has(metric) || TIMES.has(metric) || metric.startsWith('cac') ? '–' : fmt(metric, 0);
  return `<span class="n zero${cls ? ' ' + cls : ''}">${none}</span>`;
}

// Axis ticks: a round step (1, 2, 2.5 or 5 times a power of ten) and a top that holds `max`.
// Counts get whole steps.
function ticks(max, whole) {
  if (!(max > 0)) return { step: 1, top: 4 };
  const raw = max / 4, p = Math.pow(10, Math.floor(Math.log10(raw)));
  const step = Math.max(whole ? 1 : 0, [1, 2, 2.5, 5, 10].map((m) => m * p).find((v) => v >= raw));
  return { step, top: step * Math.ceil(max / step - 1e-9) };
}

const shortDay = (d) => d.slice(5); // "2026-10-01" -> "10-01"

// Axis titles with units: the y one above the value labels, the x one under the x labels.
// Charts leave 14 px at the top and bottom for them.
function axisTitles(height, axes, right) {
  return `<text class="axt" x="4" y="10">${esc(axes.y)}</text>` +
    `<text class="axt" x="${right}" y="${height - 2}" text-anchor="end">${esc(axes.x)}</text>`;
}

// Hover text of a chart part, shown by the page's tooltip (lines separated by "\n").
const tipAttr = (lines) => ` data-tip="${esc(lines.join('\n'))}"`;

// x positions and which labels fit, for `n` slots across [left, right].
function xAxis(labels, left, right, minGap) {
  const n = labels.length;
  const step = n > 1 ? (right - left) / (n - 1) : 0;
  const every = Math.max(1, Math.ceil(minGap / Math.max(step, 1)));
  const at = (i) => (n > 1 ? left + i * step : (left + right) / 2);
  let out = '';
  labels.forEach((l, i) => {
    if ((n - 1 - i) % every === 0) {
      out += `<text x="${at(i).toFixed(1)}" y="HEIGHT" text-anchor="middle">${esc(l)}</text>`;
    }
  });
  return { at, step, labels: out };
}

function yGrid(top, bottom, left, right, t, format) {
  let out = '';
  for (let v = 0; v <= t.top + t.step / 2; v += t.step) {
    const y = (bottom - ((bottom - top) * v) / t.top).toFixed(1);
    out += `<line class="${v ? 'grid' : 'axis'}" x1="${left}" x2="${right}" y1="${y}" y2="${y}"/>`;
    out += `<text x="${left - 6}" y="${Number(y) + 4}" text-anchor="end">${esc(format(v))}</text>`;
  }
  return out;
}

// Lines over days. series: [{name, color, values: [number|null]}]; the first one gets an area.
// `whole`: the values are counts.
function lineChart(width, height, days, series, format, whole, axes) {
  const left = 44, right = width - 20, top = 22, bottom = height - 36;
  const t = ticks(Math.max(0, ...series.flatMap((s) => s.values.filter((v) => v != null))), whole);
  const y = (v) => bottom - (v / t.top) * (bottom - top);
  const ax = xAxis(days.map(shortDay), left, right, 46);
  let svg = yGrid(top, bottom, left, right, t, format);
  series.forEach((s, si) => {
    const pts = s.values.map((v, i) => (v == null ? null : [ax.at(i), y(v)])).filter(Boolean);
    if (!pts.length) return;
    const path = pts.map((p, i) => `${i ? 'L' : 'M'}${p[0].toFixed(1)},${p[1].toFixed(1)}`).join('');
    if (si === 0 && pts.length > 1) {
      svg += `<path d="${path}L${pts[pts.length - 1][0].toFixed(1)},${bottom}L${pts[0][0].toFixed(1)},${bottom}Z"` +
        ` style="fill:${s.color}" opacity="0.10"/>`;
    }
    svg += `<path d="${path}" style="fill:none;stroke:${s.color}" stroke-width="2" stroke-linejoin="round"/>`;
    const last = pts[pts.length - 1];
    svg += `<circle cx="${last[0].toFixed(1)}" cy="${last[1].toFixed(1)}" r="3.5" style="fill:${s.color}"/>`;
  });
  // One invisible column per day whose tooltip lists the values.
  const w = Math.max(ax.step, 8);
  days.forEach((d, i) => {
    const tip = [d, ...series.map((s) => `${s.name}: ${s.values[i] == null ? '–' : format(s.values[i], true)}`)];
    svg += `<rect class="hit" x="${(ax.at(i) - w / 2).toFixed(1)}" y="${top}" width="${w.toFixed(1)}" height="${bottom - top}"` +
      ` fill="transparent"${tipAttr(tip)}/>`;
  });
  svg += ax.labels.replace(/HEIGHT/g, String(height - 19));
  svg += axisTitles(height, axes, right);
  return `<svg width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" role="img">${svg}</svg>`;
}

// Vertical bars, one per slot; rows[i] is a row or null. Value labels sit above the bars. The
// hover text names the slot (axes.slot(label) when given) and the value with the y axis's unit.
function barChart(width, height, labels, rows, color, labelEvery, axes) {
  const left = 36, right = width - 6, top = 28, bottom = height - 36;
  const vals = rows.map((r) => (r ? r.value : 0));
  const t = ticks(Math.max(0, ...vals), true), max = t.top;
  const slot = (right - left) / Math.max(rows.length, 1);
  const bw = Math.max(2, slot * 0.72);
  const dense = slot < 24 ? ' dense' : '';
  let svg = yGrid(top, bottom, left, right, t, compact);
  rows.forEach((r, i) => {
    const x = left + i * slot + (slot - bw) / 2;
    const h = ((r ? r.value : 0) / max) * (bottom - top);
    const name = axes && axes.slot ? axes.slot(labels[i]) : labels[i];
    const tip = `${name}: ${r ? fmt(r.metric, r.value) : 0}${axes && axes.y ? ' ' + axes.y : ''}`;
    svg += `<rect x="${x.toFixed(1)}" y="${(bottom - h).toFixed(1)}" width="${bw.toFixed(1)}" height="${h.toFixed(1)}"` +
      ` rx="2" style="fill:${color}"/>`;
    // The whole slot answers the hover, so a short bar is as easy to point at as a tall one.
    svg += `<rect class="hit" x="${(left + i * slot).toFixed(1)}" y="${top}" width="${slot.toFixed(1)}" height="${bottom - top}"` +
      ` fill="transparent"${tipAttr([tip])}/>`;
    if (r) {
      svg += `<text class="n val${dense}" x="${(x + bw / 2).toFixed(1)}" y="${(bottom - h - 4).toFixed(1)}"` +
        ` text-anchor="middle" data-metric="${esc(r.metric)}" data-dims="${esc(r.dj)}">${esc(fmt(r.metric, r.value))}</text>`;
    }
    if (i % labelEvery === 0) {
      svg += `<text x="${(x + bw / 2).toFixed(1)}" y="${height - 19}" text-anchor="middle">${esc(labels[i])}</text>`;
    }
  });
  svg += axisTitles(height, axes, right);
  return `<svg width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" role="img">${svg}</svg>`;
}

// Stacked bars per day. stacks: [{name, color, values: [number]}].
function stackedBars(width, height, days, stacks, format, axes) {
  const left = 40, right = width - 14, top = 22, bottom = height - 36;
  const totals = days.map((_, i) => stacks.reduce((a, s) => a + (s.values[i] || 0), 0));
  const t = ticks(Math.max(0, ...totals), true), max = t.top;
  const slot = (right - left) / Math.max(days.length, 1);
  const bw = Math.max(2, slot * 0.7);
  const ax = xAxis(days.map(shortDay), left + slot / 2, right - slot / 2, 46);
  let svg = yGrid(top, bottom, left, right, t, compact);
  days.forEach((d, i) => {
    let y = bottom;
    const x = left + i * slot + (slot - bw) / 2;
    const tip = [`${d}: ${format(totals[i])} in all`];
    for (const s of stacks) {
      const v = s.values[i] || 0;
      if (!v) continue;
      const h = (v / max) * (bottom - top);
      y -= h;
      svg += `<rect x="${x.toFixed(1)}" y="${y.toFixed(1)}" width="${bw.toFixed(1)}" height="${h.toFixed(1)}" style="fill:${s.color}"/>`;
      tip.push(`${s.name}: ${format(v)}`);
    }
    svg += `<rect class="hit" x="${(left + i * slot).toFixed(1)}" y="${top}" width="${slot.toFixed(1)}" height="${bottom - top}"` +
      ` fill="transparent"${tipAttr(tip)}/>`;
  });
  svg += ax.labels.replace(/HEIGHT/g, String(height - 19));
  svg += axisTitles(height, axes, right);
  return `<svg width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" role="img">${svg}</svg>`;
}

// A small line without axes; the last point is marked.
function sparkline(width, height, values, color) {
  const vs = values.map((v) => (v == null ? 0 : v));
  if (vs.length < 2) return `<svg width="${width}" height="${height}"></svg>`;
  const max = Math.max(...vs) || 1;
  const x = (i) => 2 + (i * (width - 6)) / (vs.length - 1);
  const y = (v) => height - 3 - (v / max) * (height - 6);
  const d = vs.map((v, i) => `${i ? 'L' : 'M'}${x(i).toFixed(1)},${y(v).toFixed(1)}`).join('');
  const lx = x(vs.length - 1), ly = y(vs[vs.length - 1]);
  return `<svg width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" aria-hidden="true">` +
    `<path d="${d}L${lx.toFixed(1)},${height}L2,${height}Z" style="fill:${color}" opacity="0.10"/>` +
    `<path d="${d}" style="fill:none;stroke:${color}" stroke-width="1.6" stroke-linejoin="round"/>` +
    `<circle cx="${lx.toFixed(1)}" cy="${ly.toFixed(1)}" r="2.5" style="fill:${color}"/></svg>`;
}

// Background of a heat-map cell: `t` in [0, 1] from faint to the accent colour.
function heat(t) {
  const a = 0.08 + 0.87 * Math.sqrt(Math.max(0, Math.min(1, t)));
  return { bg: `rgba(var(--heat), ${a.toFixed(3)})`, dark: a > 0.5 };
}

// One tooltip for the page: hovering (or tapping) anything with data-tip shows its text next to
// the pointer. Returns a function that shows the tip of what is under the pointer now, for after
// an update replaced the part the pointer rests on.
function tooltips() {
  const tip = document.createElement('div');
  tip.id = 'tip';
  tip.setAttribute('role', 'tooltip');
  tip.hidden = true;
  document.body.appendChild(tip);
  let at = null; // the pointer's last position
  const place = (x, y) => {
    const under = document.elementFromPoint(x, y);
    const el = under && under.closest('[data-tip]');
    if (!el) { tip.hidden = true; return; }
    tip.textContent = el.getAttribute('data-tip');
    tip.hidden = false;
    const pad = 12, w = tip.offsetWidth, h = tip.offsetHeight;
    const left = Math.min(x + pad, window.innerWidth - w - 4);
    const top = y + pad + h > window.innerHeight ? y - h - pad : y + pad;
    tip.style.left = Math.max(4, left) + 'px';
    tip.style.top = Math.max(4, top) + 'px';
  };
  const show = (e) => { at = [e.clientX, e.clientY]; place(...at); };
  document.addEventListener('pointermove', show);
  document.addEventListener('pointerdown', show);
  document.documentElement.addEventListener('pointerleave', () => { tip.hidden = true; });
  window.addEventListener('scroll', () => { tip.hidden = true; }, { passive: true });
  return () => { if (at && !tip.hidden) place(...at); };
}
