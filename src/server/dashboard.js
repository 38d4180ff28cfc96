// tidemark dashboard, part 2: the subscription, the row map, and one renderer per section.
'use strict';

const CONFIG = window.TIDEMARK_CONFIG || {};
// rows: metric + JSON(dims) -> {metric, dims, dj (dims as JSON, server's key order), value}.
// progress: the progress mark the page shows; received: the latest mark that arrived.
const rows = new Map();
const tidemark = { progress: null, received: null, rows, status: 'connecting', renders: 0 };
window.tidemark = tidemark;
const COLORS = [1, 2, 3, 4, 5, 6, 7, 8].map((i) => `var(--c${i})`);
const $ = (id) => document.getElementById(id);
let source = null, retry = null, scheduled = false, receivedAt = 0;
const funnelDay = new Map(); // funnel name -> day picked in its selector
let pickedCohort = null; // cohort day whose row a click highlighted
const TZ = CONFIG.timezone || 'UTC';

function connect() {
  const token = new URLSearchParams(location.search).get('token');
  source = new EventSource('/v1/subscribe' + (token ? '?token=' + encodeURIComponent(token) : ''));
  // A (re)opened stream starts with every current row, so what we hold is stale.
  source.onopen = () => { rows.clear(); setStatus('live'); };
  source.onmessage = (e) => {
    let m;
    try { m = JSON.parse(e.data); } catch (_) { return; }
    apply(m);
  };
  source.onerror = () => {
    setStatus('reconnecting');
    if (source.readyState === EventSource.CLOSED) { // refused: the browser will not retry
      clearTimeout(retry);
      retry = setTimeout(connect, 3000);
    }
  };
}

function apply(m) {
  if (typeof m.metric === 'string') {
    const dj = JSON.stringify(m.dims || {});
    if (m.value === null || m.value === undefined) rows.delete(m.metric + dj);
    else rows.set(m.metric + dj, { metric: m.metric, dims: m.dims || {}, dj, value: m.value });
  } else if (m.resync) {
    rows.clear();
  } else if (typeof m.progress === 'number') {
    tidemark.received = m.progress;
    receivedAt = Date.now();
    if (tidemark.status !== 'live') setStatus('live');
    schedule();
  } else if ('closed' in m) {
    setStatus('closed', String(m.closed));
  }
}

function setStatus(status, why) {
  tidemark.status = status;
  const el = $('conn');
  el.className = 'pill ' + status;
  el.textContent = { live: 'live', reconnecting: 'reconnecting…', connecting: 'connecting…', closed: 'closed' }[status];
  el.title = why ? 'the server closed the stream: ' + why : '';
}

// Renders once per frame at most; the timer covers background tabs, where frames pause.
function schedule() {
  if (scheduled) return;
  scheduled = true;
  const run = () => { if (scheduled) { scheduled = false; render(); } };
  requestAnimationFrame(run);
  setTimeout(run, 250);
}

const ago = (ms) => (ms < 1000 ? `${Math.max(0, Math.round(ms))} ms` : ms < 60e3 ? `${(ms / 1000).toFixed(1)} s`
  : ms < 3600e3 ? `${Math.round(ms / 60e3)} min` : `${(ms / 3600e3).toFixed(1)} h`);

function tick() {
  if (tidemark.received == null) return;
  const lag = Date.now() - tidemark.received;
  $('lag').textContent = ago(lag);
  $('lag').style.color = lag < 5e3 ? '' : lag < 60e3 ? 'var(--warn)' : 'var(--muted)';
  $('age').textContent = ago(Date.now() - receivedAt) + ' ago';
}

// Sets HTML only when it changed, so open selectors and tooltips survive unchanged updates.
function set(el, html) {
  if (el._html !== html) { el.innerHTML = html; el._html = html; }
}

const part = (section, cls) => section.querySelector('.' + cls);

const addDays = (day, n) => new Date(Date.parse(day + 'T00:00:00Z') + n * 864e5).toISOString().slice(0, 10);
const lastN = (list, n) => list.slice(Math.max(0, list.length - n));
const width = (el) => Math.max(120, Math.floor(el.clientWidth));
const phone = () => window.matchMedia('(max-width: 760px)').matches;

function index() {
  const by = new Map();
  for (const r of rows.values()) {
    let list = by.get(r.metric);
    if (!list) by.set(r.metric, (list = []));
    list.push(r);
  }
  const get = (m) => by.get(m) || [];
  const byDay = (m, keep) => {
    const out = new Map();
    for (const r of get(m)) if (!keep || keep(r)) out.set(r.dims.day, r);
    return out;
  };
  const days = [...byDay('dau').keys()].sort();
  return { get, byDay, days, today: days.length ? days[days.length - 1] : null };
}

function render() {
  const at = tidemark.received;
  const ix = index();
  $('today').textContent = ix.today || '–';
  renderDemo(ix);
  renderKpis(ix);
  renderActivity(ix);
  renderHourly(ix);
  renderAcquisition(ix);
  renderRetention(ix);
  renderFunnels(ix);
  renderRatios(ix);
  renderCampaigns(ix);
  renderAlerts();
  const tz = CONFIG.timezone ? ` · days in ${CONFIG.timezone}` : '';
  $('foot').textContent = `${rows.size.toLocaleString('en-US')} rows · progress ${at == null ? '–' : new Date(at).toISOString()}${tz}`;
  tidemark.progress = at;
  tidemark.renders += 1;
  refreshTip();
  tick();
}

const KPIS = [['dau', 'Daily active'], ['wau', 'Weekly active'], ['mau', 'Monthly active'],
  ['stickiness', 'Stickiness'], ['new_users', 'New users'], ['revenue', 'Revenue']];

// While the demo plays: a badge with the simulated date and hour (the latest hour with activity).
function renderDemo(ix) {
  const el = $('demo');
  if (!CONFIG.demo || !ix.today) { el.hidden = true; return; }
  const hours = ix.get('hau').map((r) => String(r.dims.hour)).filter((h) => h.startsWith(ix.today + 'T')).sort();
  const hour = hours.length ? ` ${hours[hours.length - 1].slice(11, 13)}:00` : '';
  el.textContent = `demo · simulated ${ix.today}${hour}`;
  el.title = 'tidemark serve --demo: a synthetic shop played in accelerated time';
  el.hidden = false;
}

function renderKpis(ix) {
  for (const [metric, label] of KPIS) {
    const el = $('kpi-' + metric);
    if (!el.firstChild) el.innerHTML = `<div class="label">${label}</div><div class="v"></div><div class="was"></div><div class="spark"></div>`;
    const series = ix.byDay(metric);
    const today = ix.today && series.get(ix.today);
    const prev = ix.today && series.get(addDays(ix.today, -1));
    set(part(el, 'v'), ix.today ? numOr(today, metric) : '–');
    set(part(el, 'was'), ix.today ? `yesterday ${numOr(prev, metric)}` : '&nbsp;');
    const values = lastN(ix.days, 30).map((d) => (series.get(d) || { value: 0 }).value);
    set(part(el, 'spark'), sparkline(width(part(el, 'spark')), 34, values, 'var(--c1)'));
  }
}

function renderActivity(ix) {
  const el = $('activity');
  if (!el.firstChild) {
    el.innerHTML = '<h2>Active users</h2><p class="sub">Persons active each day (DAU), and over the trailing 7 (WAU) and 30 days (MAU); stickiness = DAU / MAU.</p>' +
      '<div class="split"><div><div class="legend"></div><div class="chart"></div></div><div class="table"></div></div>';
  }
  const lines = [['dau', 'DAU', COLORS[0]], ['wau', 'WAU', COLORS[1]], ['mau', 'MAU', COLORS[4]]];
  const days = lastN(ix.days, 60);
  const maps = Object.fromEntries(lines.map(([m]) => [m, ix.byDay(m)]));
  set(part(el, 'legend'), lines.map(([, n, c]) => `<span><i style="background:${c}"></i>${n}</span>`).join(''));
  const series = lines.map(([m, name, color]) => ({ name, color, values: days.map((d) => (maps[m].get(d) || { value: null }).value) }));
  set(part(el, 'chart'), days.length ? lineChart(width(part(el, 'chart')), 254, days, series, compact, true, { y: 'persons', x: `day (${TZ})` }) : '<div class="empty">No activity yet</div>');
  const stick = ix.byDay('stickiness');
  const recent = lastN(ix.days, 7).reverse();
  set(part(el, 'table'), '<table><tr><th>Day</th><th>DAU</th><th>WAU</th><th>MAU</th><th>Stickiness</th></tr>' +
    recent.map((d) => `<tr class="${d === ix.today ? 'today' : ''}"><td>${d === ix.today ? 'today' : esc(shortDay(d))}</td>` +
      lines.map(([m]) => `<td>${numOr(maps[m].get(d), m)}</td>`).join('') +
      `<td>${numOr(stick.get(d), 'stickiness')}</td></tr>`).join('') + '</table>');
}

function renderHourly(ix) {
  const el = $('hourly');
  if (!el.firstChild) el.innerHTML = '<h2>Today by hour</h2><p class="sub"></p><div class="chart"></div><div class="note muted"></div>';
  set(part(el, 'sub'), ix.today ? `Persons active in each hour of ${esc(ix.today)}` : 'Persons active in each hour of the latest day');
  const hours = [...Array(24).keys()].map((h) => String(h).padStart(2, '0'));
  const byHour = new Map(ix.get('hau').filter((r) => ix.today && String(r.dims.hour).startsWith(ix.today + 'T')).map((r) => [r.dims.hour.slice(11, 13), r]));
  const slots = hours.map((h) => byHour.get(h) || null);
  set(part(el, 'chart'), byHour.size ? barChart(width(part(el, 'chart')), 244, hours, slots, 'var(--bar)', phone() ? 6 : 3, { y: 'persons active', x: `hour (${TZ})`, slot: (h) => `${h}:00–${h}:59` }) : '<div class="empty">No activity on the latest day yet</div>');
  const peak = slots.reduce((best, r) => (r && (!best || r.value > best.value) ? r : best), null);
  const dau = ix.today && ix.byDay('dau').get(ix.today);
  set(part(el, 'note'), peak ? `Peak at ${esc(peak.dims.hour.slice(11, 13))}:00 with ${num(peak)} · ${numOr(dau, 'dau')} active so far today` : '');
}

function renderAcquisition(ix) {
  const el = $('acquisition');
  if (!el.firstChild) {
    el.innerHTML = '<h2>Acquisition by channel</h2><p class="sub">New users per day by the channel of their first event. CAC = spend / new users; ROAS = revenue / spend, over all days.</p>' +
      '<div class="split even"><div><div class="legend"></div><div class="chart"></div></div><div class="table"></div></div>';
  }
  const nu = ix.get('new_users_by_channel');
  const channels = [...new Set([...nu, ...ix.get('spend'), ...ix.get('cac_total')].map((r) => r.dims.channel))].sort();
  const color = (c) => COLORS[channels.indexOf(c) % COLORS.length];
  const days = lastN(ix.days, 30);
  const stacks = channels.map((c) => {
    const m = new Map(nu.filter((r) => r.dims.channel === c).map((r) => [r.dims.day, r.value]));
    return { name: c, color: color(c), values: days.map((d) => m.get(d) || 0) };
  });
  set(part(el, 'legend'), channels.map((c) => `<span><i style="background:${color(c)}"></i>${esc(c)}</span>`).join(''));
  set(part(el, 'chart'), nu.length ? stackedBars(width(part(el, 'chart')), 254, days, stacks, (v) => fmt('new_users', v), { y: 'new persons', x: `day (${TZ})` }) : '<div class="empty">No new users yet</div>');
  const one = (m, c, day) => ix.get(m).find((r) => r.dims.channel === c && (day === undefined || r.dims.day === day));
  const total = (c) => nu.filter((r) => r.dims.channel === c).reduce((a, r) => a + r.value, 0);
  set(part(el, 'table'), '<table><tr><th>Channel</th><th>New today</th><th class="wide">New, all days</th><th class="wide">Spend today</th>' +
    '<th class="wide">CAC today</th><th>CAC</th><th>ROAS</th></tr>' + channels.map((c) => `<tr><td title="${esc(c)}"><span class="chip" style="background:${color(c)}"></span><span class="ch">${esc(c)}</span></td>` +
      `<td>${numOr(one('new_users_by_channel', c, ix.today), 'new_users_by_channel')}</td><td class="wide muted">${fmt('new_users', total(c))}</td>` +
      `<td class="wide">${numOr(one('spend', c, ix.today), 'spend')}</td><td class="wide">${numOr(one('cac', c, ix.today), 'cac')}</td>` +
      `<td>${numOr(one('cac_total', c), 'cac_total')}</td><td>${numOr(one('roas_total', c), 'roas_total')}</td></tr>`).join('') + '</table>');
}

function renderRetention(ix) {
  const el = $('retention');
  if (!el.firstChild) {
    el.innerHTML = '<h2>Retention cohorts</h2><p class="sub">Of the persons new on a day, the share active again n days later. Darker is better; blank cells lie in the future.</p><div class="heatwrap"></div>';
  }
  const rates = ix.get('retention_rate');
  const cohorts = lastN([...new Set([...ix.get('new_users').map((r) => r.dims.day), ...rates.map((r) => r.dims.cohort_day)])].sort(), 30);
  const maxN = Math.min(Math.max(7, ...rates.map((r) => r.dims.n)), CONFIG.retention_max_day || 30);
  const cell = new Map(rates.map((r) => [r.dims.cohort_day + '/' + r.dims.n, r]));
  const top = Math.max(0.01, ...rates.filter((r) => cohorts.includes(r.dims.cohort_day)).map((r) => r.value));
  const sizes = ix.byDay('new_users');
  const ns = [...Array(maxN).keys()].map((i) => i + 1);
  const head = `<tr><th class="cohort" title="first day (${esc(TZ)})">Cohort</th><th title="persons">New</th>${ns.map((n) => `<th title="days after the cohort day">${n === 1 ? 'day 1' : n}</th>`).join('')}</tr>`;
  const kept = new Map(ix.get('retention').map((r) => [r.dims.cohort_day + '/' + r.dims.n, r.value]));
  const body = cohorts.slice().reverse().map((c) => `<tr data-cohort="${esc(c)}"${c === pickedCohort ? ' class="picked"' : ''}><td class="cohort">${esc(shortDay(c))}</td><td class="size">${numOr(sizes.get(c), 'new_users')}</td>` +
    ns.map((n) => {
      const r = cell.get(c + '/' + n);
      if (r) {
        const h = heat(r.value / top);
        const of = sizes.get(c) ? ` of ${fmt('new_users', sizes.get(c).value)}` : '';
        const tip = tipAttr([`cohort ${c}, day ${n}`, `${fmt('retention_rate', r.value)} active (${fmt('retention', kept.get(c + '/' + n) || 0)}${of} persons)`]);
        return `<td class="${h.dark ? 'dark' : ''}" style="background:${h.bg}"${tip}>${num(r)}</td>`;
      }
      return ix.today && addDays(c, n) <= ix.today ? `<td class="zero"${tipAttr([`cohort ${c}, day ${n}`, 'nobody active'])}>0</td>` : '<td></td>';
    }).join('') + '</tr>').join('');
  // Summary: of everyone in the shown cohorts whose day n is over, the share active on it.
  const all = ns.map((n) => {
    const done = cohorts.filter((c) => ix.today && addDays(c, n) < ix.today && sizes.get(c));
    const base = done.reduce((a, c) => a + sizes.get(c).value, 0);
    if (!base) return '<td></td>';
    const v = done.reduce((a, c) => a + (kept.get(c + '/' + n) || 0), 0) / base, h = heat(v / top);
    return `<td class="${h.dark ? 'dark' : ''}" style="background:${h.bg}"${tipAttr([`all cohorts, day ${n}`, `${fixed(100 * v, 1)}% of ${fmt('new_users', base)} persons`])}>${fixed(100 * v, 1)}%</td>`;
  }).join('');
  const summary = `<tr class="all" title="Weighted over the cohorts whose day n is over"><td class="cohort">all</td><td class="size"></td>${all}</tr>`;
  set(part(el, 'heatwrap'), cohorts.length ? `<table class="heat">${head}${summary}${body}</table>` : '<div class="empty">No cohorts yet</div>');
}

function renderFunnels(ix) {
  const el = $('funnels');
  if (!el.firstChild) el.innerHTML = '<h2>Funnels</h2><p class="sub">Persons who start a funnel on the day and reach each step within its window, as a share of step 1.</p><div class="list"></div>';
  const counts = ix.get('funnel'), conv = ix.get('funnel_conversion');
  const names = [...new Set([...(CONFIG.funnels || []).map((f) => f.name), ...counts.map((r) => r.dims.funnel)])];
  const html = names.map((name) => {
    const steps = ((CONFIG.funnels || []).find((f) => f.name === name) || {}).steps || [];
    const mine = counts.filter((r) => r.dims.funnel === name);
    const days = [...new Set(mine.map((r) => r.dims.day))].sort().reverse();
    const day = days.includes(funnelDay.get(name)) ? funnelDay.get(name) : days[0];
    const k = Math.max(steps.length, ...mine.map((r) => r.dims.step));
    const at = (list, s) => list.find((r) => r.dims.funnel === name && r.dims.day === day && r.dims.step === s);
    const options = days.map((d) => `<option value="${esc(d)}"${d === day ? ' selected' : ''}>${d === ix.today ? 'today' : esc(d)}</option>`).join('');
    const bars = !day ? '<div class="empty">Nobody has started it yet</div>' : [...Array(k).keys()].map((i) => {
      const s = i + 1, c = at(counts, s), r = at(conv, s), before = s > 1 && at(counts, s - 1);
      const w = r ? Math.max(0.5, Math.min(100, r.value * 100)) : 0;
      const stepRate = c && before ? `<small>${fixed((100 * c.value) / before.value, 1)}% of step ${s - 1}</small>` : s > 1 ? '<small>&nbsp;</small>' : '<small>entered</small>';
      return `<div class="step"><div class="name" title="${esc(steps[i] || '')}">${s}. ${esc(steps[i] || 'step ' + s)}${stepRate}</div>` +
        `<div class="track"><div class="fill" style="width:${w.toFixed(2)}%"></div><div class="txt">${numOr(c, 'funnel')}${numOr(r, 'funnel_conversion')}</div></div></div>`;
    }).join('');
    return `<div class="funnel"><h3>${esc(name)}<select data-funnel="${esc(name)}" aria-label="day">${options}</select></h3>${bars}</div>`;
  }).join('');
  set(part(el, 'list'), html || '<div class="empty">No funnels configured</div>');
}

function renderRatios(ix) {
  const el = $('ratios');
  if (!el.firstChild) el.innerHTML = '<h2>Ratios</h2><p class="sub">Persons with a numerator event over persons in the denominator, per day.</p><div class="list"></div>';
  const names = [...new Set([...(CONFIG.ratios || []).map((r) => r.name), ...ix.get('ratio').map((r) => r.dims.name)])];
  const spark = Math.min(160, Math.max(80, width(el) - 220));
  const html = names.map((name) => {
    const def = (CONFIG.ratios || []).find((r) => r.name === name);
    const text = def ? `${def.numerator.join(' or ')} / ${Array.isArray(def.denominator) ? def.denominator.join(' or ') : def.denominator}` : '';
    const series = ix.byDay('ratio', (r) => r.dims.name === name);
    const onToday = (m) => ix.today && ix.get(m).find((r) => r.dims.name === name && r.dims.day === ix.today);
    const values = lastN(ix.days, 30).map((d) => (series.get(d) || { value: 0 }).value);
    const prev = ix.today && series.get(addDays(ix.today, -1));
    return `<div class="ratio"><div><div class="nm">${esc(name)}</div><div class="def">${esc(text)}</div>${sparkline(spark, 26, values, 'var(--c2)')}</div>` +
      `<div><div class="big">${numOr(ix.today && series.get(ix.today), 'ratio')}</div><div class="parts">${numOr(onToday('ratio_numerator'), 'ratio_numerator')} / ${numOr(onToday('ratio_denominator'), 'ratio_denominator')} today</div>` +
      `<div class="parts">yesterday ${numOr(prev, 'ratio')}</div></div></div>`;
  }).join('');
  set(part(el, 'list'), html || '<div class="empty">No ratios configured</div>');
}

document.addEventListener('change', (e) => {
  const name = e.target.getAttribute && e.target.getAttribute('data-funnel');
  if (name !== null && name !== undefined) { funnelDay.set(name, e.target.value); render(); }
});
window.addEventListener('resize', schedule);
setInterval(tick, 1000);
// A click on a cohort row highlights it (again: no longer); it stays across updates. It is
// taken on the press: updates redraw the table many times a second, and a row redrawn between
// press and release would get no click at all.
document.addEventListener('pointerdown', (e) => {
  if (e.button !== 0) return;
  const tr = e.target.closest && e.target.closest('table.heat tr[data-cohort]');
  if (!tr) return;
  const c = tr.getAttribute('data-cohort');
  pickedCohort = pickedCohort === c ? null : c;
  for (const row of document.querySelectorAll('table.heat tr[data-cohort]')) {
    row.classList.toggle('picked', row.getAttribute('data-cohort') === pickedCohort);
  }
});

const refreshTip = tooltips();
connect();
