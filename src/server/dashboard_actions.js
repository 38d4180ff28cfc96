// tidemark dashboard, part 3: campaigns (each rule's firings by group, conversion, lift and what
// is pending) from the rows, and the alerts' states from /v1/alerts.
'use strict';

RATE.add('trigger_conversion_rate');
RATE.add('trigger_lift');

function renderCampaigns(ix) {
  const el = $('campaigns');
  const rules = CONFIG.rules || [];
  if (!rules.length) { el.hidden = true; return; }
  if (!el.firstChild) {
    el.innerHTML = '<h2>Campaigns</h2><p class="sub">Firings of each rule per day by group (holdout firings run no action), conversion within the goal window, lift of treatment over holdout, and firings waiting for their release time.</p>' +
      '<div class="split"><div><div class="legend"></div><div class="chart"></div></div><div class="table"></div></div>';
  }
  const fired = ix.get('trigger_fired');
  const days = [...new Set(fired.map((r) => r.dims.day))].sort();
  const shown = lastN(days, 30);
  const groups = [['treatment', 'treatment', COLORS[0]], ['holdout', 'holdout', COLORS[6]]];
  const stacks = [];
  rules.forEach((rule, i) => {
    for (const [g, , color] of groups) {
      const values = shown.map((d) => fired.filter((r) => r.dims.rule === rule.name && r.dims.group === g && r.dims.day === d)
        .reduce((a, r) => a + r.value, 0));
      if (values.some((v) => v)) stacks.push({ name: `${rule.name} · ${g}`, color: g === 'holdout' ? `color-mix(in srgb, ${COLORS[i % COLORS.length]} 45%, var(--card))` : COLORS[i % COLORS.length], values });
    }
  });
  set(part(el, 'legend'), stacks.map((s) => `<span><i style="background:${s.color}"></i>${esc(s.name)}</span>`).join(''));
  set(part(el, 'chart'), stacks.length ? stackedBars(width(part(el, 'chart')), 224, shown, stacks, (v) => fixed(v, 0) + ' firings', { y: 'firings', x: `day (${TZ})` }) : '<div class="empty">No firings yet</div>');
  const one = (m, rule, g) => ix.get(m).find((r) => r.dims.rule === rule && (g === undefined || r.dims.group === g));
  const total = (rule, g) => fired.filter((r) => r.dims.rule === rule && r.dims.group === g).reduce((a, r) => a + r.value, 0);
  const today = (rule) => fired.filter((r) => r.dims.rule === rule && r.dims.day === ix.today).reduce((a, r) => a + r.value, 0);
  set(part(el, 'table'), '<table><tr><th>Rule</th><th title="firings released today">Today</th><th>Treatment</th><th>Holdout</th><th title="converted / fired, treatment">Conv.</th><th title="conversion rate of treatment minus that of holdout">Lift</th><th title="decided firings whose release time has not come">Pending</th></tr>' +
    rules.map((rule) => `<tr data-rule="${esc(rule.name)}"><td><span class="ch" title="${esc(rule.name)}: ${esc(rule.when)}">${esc(rule.name)}</span></td>` +
      `<td>${fixed(today(rule.name), 0)}</td><td>${fixed(total(rule.name, 'treatment'), 0)}</td><td>${fixed(total(rule.name, 'holdout'), 0)}</td>` +
      `<td>${one('trigger_conversion_rate', rule.name, 'treatment') || !total(rule.name, 'treatment') ? numOr(one('trigger_conversion_rate', rule.name, 'treatment'), 'trigger_conversion_rate') : '<span class="n zero">0.0%</span>'}</td>` +
      `<td>${numOr(one('trigger_lift', rule.name), 'trigger_lift')}</td>` +
      `<td>${numOr(one('trigger_pending', rule.name), 'trigger_pending')}</td></tr>`).join('') + '</table>');
}

// Alerts: polled from /v1/alerts at most every two seconds, after progress marks.
let alertsAt = 0, alertsBusy = false;

function renderAlerts() {
  const el = $('alerts');
  if (!(CONFIG.alerts || []).length) { el.hidden = true; return; }
  if (!el.firstChild) {
    el.innerHTML = '<h2>Alerts</h2><p class="sub">Each alert is judged bucket by bucket once the bucket and its grace are over; until then it has no data.</p><div class="table"></div>';
  }
  if (alertsBusy || Date.now() - alertsAt < 2000) return;
  alertsBusy = true;
  const token = new URLSearchParams(location.search).get('token');
  fetch('/v1/alerts' + (token ? '?token=' + encodeURIComponent(token) : ''), { credentials: 'same-origin' })
    .then((r) => r.json())
    .then((doc) => {
      tidemark.alerts = doc.alerts;
      const state = (s) => `<span class="pill ${s === 'firing' ? 'closed' : s === 'ok' ? 'live' : 'connecting'}">${esc(s.replace('_', ' '))}</span>`;
      set(part(el, 'table'), '<table><tr><th>Alert</th><th>Metric</th><th>State</th><th>Judged through</th><th>Last change</th></tr>' +
        doc.alerts.map((a) => `<tr data-alert="${esc(a.alert)}"><td>${esc(a.alert)}</td><td>${esc(a.metric)}</td><td>${state(a.state)}</td>` +
          `<td>${esc(a.judged_through || '–')}</td><td class="note">${a.last_transition ? esc(`${a.last_transition.state} at ${a.last_transition.bucket} (${a.last_transition.value}${a.last_transition.baseline == null ? '' : ' vs ' + fixed(a.last_transition.baseline, 1)})`) : '–'}</td></tr>`).join('') + '</table>');
    })
    .catch(() => {})
    .finally(() => { alertsAt = Date.now(); alertsBusy = false; });
}
