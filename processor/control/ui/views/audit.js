// Audit: the config audit trail (who changed what, when, why; old and new values side by
// side) and the event audit search (which rule handled an event, how). Both are filtered
// and paged by the API (`page`, `limit`; the answer's `pagination` says how many pages).

import { errorText } from '../api.js';
import { h, replace, table, field, pretty } from '../dom.js';

const OPERATIONS = ['CREATE', 'UPDATE', 'DELETE', 'REPLAY', 'PURGE', 'ROTATE', 'REVOKE', 'EXPIRE', 'RETAIN', 'PARK'];

// A datetime-local input's value as RFC 3339 (in UTC), or undefined when empty.
function rfc3339(input) {
  if (!input.value) return undefined;
  const d = new Date(input.value);
  return Number.isNaN(d.getTime()) ? undefined : d.toISOString();
}

// A filtered, paged search: a form, a table, previous/next. `columns` and `row` draw the
// results; `fields` are [name, field] pairs; `dates` names the two date inputs.
function search({ api, id, title, path, fields, columns, row, listKey, limit = 20 }) {
  let page = 1;
  const result = h('div');
  const pager = h('div.actions.pager');
  const formError = h('p.error', { role: 'alert', hidden: true });
  const form = h(
    'form.filters',
    { 'aria-labelledby': `${id}-h`, novalidate: true },
    fields.map(([, f]) => f.wrap),
    formError,
    h('div.actions', null, h('button.primary', { type: 'submit' }, 'Search'), h('button', { type: 'button', onclick: () => (form.reset(), load(1)) }, 'Clear')),
  );
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    load(1);
  });

  async function load(p) {
    page = p;
    formError.hidden = true;
    for (const [, f] of fields) f.setError('');
    const params = { page, limit };
    for (const [name, f] of fields) params[name] = f.input.type === 'datetime-local' ? rfc3339(f.input) : f.input.value.trim();
    try {
      const r = await api('GET', path, { params });
      const rows = r[listKey] || [];
      const pg = r.pagination || { page, pages: 1, total: rows.length };
      replace(result, h('p.muted', { 'data-testid': `${id}-total` }, `${pg.total} result${pg.total === 1 ? '' : 's'}; page ${pg.page} of ${Math.max(1, pg.pages)}.`), table(title, columns, rows.map(row), { empty: 'Nothing matches.' }));
      replace(
        pager,
        h('button', { type: 'button', disabled: pg.page <= 1, onclick: () => load(pg.page - 1) }, 'Previous page'),
        h('button', { type: 'button', disabled: pg.page >= pg.pages, onclick: () => load(pg.page + 1) }, 'Next page'),
      );
    } catch (e) {
      const hit = fields.find(([name]) => name === e.field);
      if (hit) hit[1].setError(e.message);
      else {
        formError.textContent = errorText(e);
        formError.hidden = false;
      }
    }
  }

  const section = h('section', null, h('h2', { id: `${id}-h` }, title), form, result, pager);
  return { section, load };
}

export async function render(root, { api }) {
  const text = (label, name, attrs = {}) => [name, field(label, h('input', { name, type: 'text', autocomplete: 'off', ...attrs }))];
  const date = (label, name) => [name, field(label, h('input', { name, type: 'datetime-local' }))];

  const config = search({
    api,
    id: 'cfg-audit',
    title: 'Config audit trail',
    path: '/audit',
    listKey: 'logs',
    fields: [
      text('Changed by', 'changed_by'),
      ['operation', field('Operation', h('select', { name: 'operation' }, h('option', { value: '' }, 'any'), OPERATIONS.map((o) => h('option', { value: o }, o))))],
      text('Table', 'table_name', { placeholder: 'alert_rules' }),
      text('Record key', 'record_key'),
      date('From', 'start_date'),
      date('To', 'end_date'),
    ],
    columns: ['When', 'Who', 'Operation', 'Table', 'Record', 'Reason', 'Old value', 'New value'],
    row: (l) =>
      h(
        'tr',
        null,
        h('td', null, new Date(l.changed_at).toLocaleString()),
        h('td', null, l.changed_by),
        h('td', null, l.operation),
        h('td.mono', null, l.table_name),
        h('td.mono', null, l.record_key ?? (l.record_id === null ? '—' : String(l.record_id))),
        h('td', null, l.reason ?? '—'),
        h('td', null, h('pre.value.old', { tabindex: '0' }, pretty(l.old_values))),
        h('td', null, h('pre.value.new', { tabindex: '0' }, pretty(l.new_values))),
      ),
  });

  const events = search({
    api,
    id: 'event-audit',
    title: 'Event audit',
    path: '/events',
    listKey: 'events',
    fields: [text('Host', 'hostname'), text('Rule id', 'rule_id', { inputmode: 'numeric' }), text('Event id', 'event_id'), date('From', 'start_date'), date('To', 'end_date')],
    columns: ['Event time', 'Host', 'Event id', 'Rule', 'Handling', 'Forwarded', 'Team', 'Message'],
    row: (e) => {
      const raw = e.raw_message;
      const msg = raw && typeof raw === 'object' && typeof raw.message === 'string' ? raw.message : pretty(raw);
      return h(
        'tr',
        { 'data-event': e.event_id || '' },
        h('td', null, new Date(e.event_timestamp).toLocaleString()),
        h('td', null, e.hostname),
        h('td.mono', null, e.event_id ?? '—'),
        h('td.num', { 'data-testid': 'event-rule' }, e.matched_rule_id === null ? 'none' : String(e.matched_rule_id)),
        h('td', null, e.handling_decision ?? '—'),
        h('td', null, e.forwarded_to_moog === null ? '—' : e.forwarded_to_moog ? 'yes' : 'no'),
        h('td', null, e.team_assignment ?? '—'),
        h('td.error-text', null, msg),
      );
    },
  });

  root.append(config.section, events.section);
  await Promise.all([config.load(1), events.load(1)]);
}
