// Overview: the pipeline's health at a glance. Polls GET /overview every 2 s and derives
// rates from counter deltas between polls (the API gives totals, not rates); keeps ~5
// minutes of samples for the charts. SLOs come from GET /slo every 15 s (Prometheus
// queries are heavier); a 503 there means "no Prometheus", shown as a note, not an error.

import { errorText } from '../api.js';
import { h, replace, table, age, num, pct, time } from '../dom.js';
import { timeSeries } from '../charts.js';

const POLL_MS = 2000;
const SLO_MS = 15000;
const WINDOW_MS = 5 * 60 * 1000;

// Rate of a counter between two samples; a counter that went down (a restart, a process
// gone) counts as no progress rather than a negative rate.
function rate(prev, cur, dtMs) {
  if (prev === undefined || cur === undefined || !(dtMs > 0)) return null;
  return Math.max(0, cur - prev) / (dtMs / 1000);
}

const rateText = (r) => (r === null ? '—' : `${num(r, 1)}/s`);

export async function render(root, { api }) {
  const tiles = h('div.tiles');
  const charts = h('div.charts');
  const streams = h('section', null);
  const dlqs = h('section', null);
  const procs = h('section', null);
  const slo = h('section', null, h('h2', { id: 'ov-slo' }, 'Service-level objectives'), h('p', null, 'Loading…'));
  const updated = h('p.muted', { 'data-testid': 'overview-updated' }, 'Loading…');
  root.append(updated, tiles, charts, streams, dlqs, procs, slo);

  let prev = null;
  const history = []; // {t, events, alerts, lag, dlq}
  let rateLimit = null; // the forwarder's configured webhook rate limit, from /config
  let timer = null;
  let sloTimer = null;
  let stopped = false;

  async function loadConfig() {
    try {
      const cfg = await api('GET', '/config');
      const s = (cfg.settings || []).find((x) => x.key === 'webhook_rate_limit');
      rateLimit = s ? s.value : null;
    } catch {
      rateLimit = null;
    }
  }

  function tile(label, value, testid, sub) {
    return h('div.tile', { 'data-testid': testid }, h('span.tile-label', null, label), h('strong.tile-value', null, value), sub ? h('span.tile-sub', null, sub) : null);
  }

  function draw(o, r) {
    const events = (o.streams || []).find((s) => s.name === 'events');
    const total = o.totals || {};
    const breakers = (o.processes || []).filter((p) => p.stats && 'breaker_open' in p.stats);
    const open = breakers.filter((p) => p.stats.breaker_open);
    const ready = (o.processes || []).filter((p) => p.ready === true).length;
    const cfg = o.config || {};
    replace(
      tiles,
      tile('Events in', rateText(r.events), 'events-rate', `${num(events ? events.entries_added : null)} accepted in all`),
      tile('Alerts delivered', rateText(r.alerts), 'alerts-rate', `${num(total.alerts_delivered)} in all`),
      tile('Rate-limit hits', rateText(r.limits), 'rate-limit', rateLimit === null ? 'webhook limit unknown' : Number(rateLimit) === 0 ? 'no webhook rate limit' : `webhook limit ${rateLimit}/s`),
      tile('Webhook breaker', breakers.length ? (open.length ? `open on ${open.length}` : 'closed') : '—', 'breaker', `${breakers.length} forwarder${breakers.length === 1 ? '' : 's'}`),
      tile('Processes ready', `${ready} of ${(o.processes || []).length}`, 'processes-ready', null),
      tile('Config version', `v${cfg.version ?? '—'}`, 'config-version', cfg.converged ? 'converged' : 'not every process applied it'),
    );
    const series = (key) => history.map((x) => [x.t, x[key]]).filter(([, v]) => v !== null);
    replace(
      charts,
      timeSeries('Events in per second', series('events'), { windowMs: WINDOW_MS, format: (v) => `${num(v, 1)}/s` }),
      timeSeries('Alerts out per second', series('alerts'), { windowMs: WINDOW_MS, format: (v) => `${num(v, 1)}/s` }),
      timeSeries('Group lag (entries)', series('lag'), { windowMs: WINDOW_MS, format: (v) => num(v) }),
      timeSeries('DLQ depth (letters)', series('dlq'), { windowMs: WINDOW_MS, format: (v) => num(v) }),
    );
    const streamRows = [];
    for (const s of o.streams || []) {
      const groups = s.groups && s.groups.length ? s.groups : [null];
      for (const g of groups) {
        streamRows.push(
          h('tr', null, h('td', null, s.name), h('td.mono', null, s.key), h('td.num', null, num(s.length)), h('td.num', null, num(s.entries_added)), h('td', null, g ? g.name : '—'), h('td.num', null, g ? num(g.lag) : '—'), h('td.num', null, g ? num(g.pending) : '—'), h('td.num', null, g ? num(g.consumers) : '—')),
        );
      }
    }
    replace(streams, h('h2', { id: 'ov-streams' }, 'Streams and groups'), table('Streams and consumer groups', ['Stream', 'Key', 'Length', 'Entries added', 'Group', 'Lag', 'Pending', 'Consumers'], streamRows));
    replace(
      dlqs,
      h('h2', { id: 'ov-dlqs' }, 'Dead-letter queues'),
      table(
        'Dead-letter queues',
        ['DLQ', 'Depth', 'Parked', 'Oldest'],
        (o.dlqs || []).map((d) => h('tr', { 'data-dlq': d.name }, h('td', null, h('a', { href: '#/dlq' }, d.name)), h('td.num', { 'data-testid': `dlq-depth-${d.name}` }, num(d.depth)), h('td.num', null, num(d.parked)), h('td', null, d.oldest_age_seconds === null ? '—' : age(d.oldest_age_seconds)))),
      ),
    );
    replace(
      procs,
      h('h2', { id: 'ov-procs' }, 'Processes'),
      h('p', { 'data-testid': 'processes-summary' }, `${ready} of ${(o.processes || []).length} processes ready; config v${cfg.version ?? '—'} in force${cfg.converged ? ', applied by all' : ''}.`),
      table(
        'Processes',
        ['Process', 'Roles', 'Ready', 'Config applied', 'Stats', 'Last report'],
        (o.processes || []).map((p) => {
          const checks = Object.entries(p.checks || {});
          const readyText = p.ready === true ? 'ready' : p.ready === false ? 'not ready' : 'unknown';
          const readyCell = checks.length
            ? h('details', null, h('summary', { class: `badge ${p.ready === true ? 'good' : p.ready === false ? 'bad' : ''}` }, readyText), h('ul.checks', null, checks.map(([k, v]) => h('li', null, `${k}: ${typeof v === 'string' ? v : JSON.stringify(v)}`))))
            : h('span', { class: `badge ${p.ready === true ? 'good' : p.ready === false ? 'bad' : ''}` }, readyText);
          const stats = Object.entries(p.stats || {}).map(([k, v]) => `${k.replace(/_/g, ' ')} ${typeof v === 'boolean' ? (v ? 'yes' : 'no') : num(v)}`);
          return h(
            'tr',
            { 'data-process': p.consumer },
            h('td.mono', null, p.consumer),
            h('td', null, (p.roles || []).join(', ')),
            h('td', null, readyCell),
            h('td', null, `v${p.version ?? '—'}`, p.converged ? '' : ` (in force: v${cfg.version ?? '—'})`),
            h('td.small', null, stats.join(' · ') || '—'),
            h('td', null, p.seen_ms ? time(p.seen_ms) : '—'),
          );
        }),
        { empty: 'No process has reported in the last minute.' },
      ),
    );
    updated.textContent = `Updated ${new Date(o.time_ms || Date.now()).toLocaleTimeString()} · refreshes every ${POLL_MS / 1000} s`;
  }

  async function poll() {
    if (stopped) return;
    try {
      const o = await api('GET', '/overview');
      if (stopped) return;
      const t = o.time_ms || Date.now();
      const events = (o.streams || []).find((s) => s.name === 'events');
      const tot = o.totals || {};
      const cur = { t, events: events ? events.entries_added : undefined, alerts: tot.alerts_delivered, limits: tot.rate_limit_hits };
      const dt = prev ? t - prev.t : 0;
      const r = {
        events: prev ? rate(prev.events, cur.events, dt) : null,
        alerts: prev ? rate(prev.alerts, cur.alerts, dt) : null,
        limits: prev ? rate(prev.limits, cur.limits, dt) : null,
      };
      prev = cur;
      const lag = (o.streams || []).reduce((a, s) => a + (s.groups || []).reduce((b, g) => b + (g.lag || 0), 0), 0);
      const dlq = (o.dlqs || []).reduce((a, d) => a + (d.depth || 0), 0);
      history.push({ t, events: r.events, alerts: r.alerts, lag, dlq });
      while (history.length && history[0].t < t - WINDOW_MS) history.shift();
      draw(o, r);
    } catch (e) {
      if (!stopped) updated.textContent = `Could not refresh: ${errorText(e)}`;
    }
    if (!stopped) timer = setTimeout(poll, POLL_MS);
  }

  async function pollSlo() {
    if (stopped) return;
    try {
      const rep = await api('GET', '/slo');
      if (stopped) return;
      replace(
        slo,
        h('h2', { id: 'ov-slo' }, 'Service-level objectives'),
        h('p.muted', null, `Error-budget window ${rep.window}; evaluated ${new Date(rep.evaluated_at).toLocaleString()}.`),
        table(
          'Service-level objectives',
          ['Objective', 'Target', 'Actual', 'Budget left', 'Burn 1h', 'Burn 6h', 'Burn 24h', 'Status'],
          (rep.slos || []).map((s) => {
            const b = s.burn_rate || {};
            const burn = (v) => (v === null || v === undefined ? '—' : num(v, 2));
            return h(
              'tr',
              null,
              h('td', null, h('span', null, s.name), h('span.small.block', null, s.description)),
              h('td.num', null, pct(s.target, 2)),
              h('td.num', null, pct(s.actual, 3)),
              h('td.num', null, pct(s.error_budget_remaining, 1)),
              h('td.num', null, burn(b['1h'])),
              h('td.num', null, burn(b['6h'])),
              h('td.num', null, burn(b['24h'])),
              h('td', null, h('span', { class: `badge ${s.status === 'ok' ? 'good' : s.status === 'no_data' ? '' : 'bad'}` }, s.status.replace('_', ' '))),
            );
          }),
        ),
      );
    } catch (e) {
      if (stopped) return;
      replace(slo, h('h2', { id: 'ov-slo' }, 'Service-level objectives'), h('p.notice', { 'data-testid': 'slo-unavailable' }, `SLOs unavailable: ${e.message || errorText(e)}`));
    }
    if (!stopped) sloTimer = setTimeout(pollSlo, SLO_MS);
  }

  await loadConfig();
  poll();
  pollSlo();
  return () => {
    stopped = true;
    clearTimeout(timer);
    clearTimeout(sloTimer);
  };
}
