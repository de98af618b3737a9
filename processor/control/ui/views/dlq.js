// Dead letters: both DLQs, a filter (error text, source id, age, parked), a page of
// letters with their provenance and payload, and replay or purge of one letter, the
// checked ones, or everything the filter matches. Every bulk action asks the API first
// with `dry_run: true` so that the confirmation says how many letters it will touch.

import { errorText } from '../api.js';
import { h, replace, table, field, age, time, num, pretty, confirm } from '../dom.js';

const PAGE = 50;

export async function render(root, { api, can, announce, isCurrent }) {
  const writer = can('write');
  const state = { dlq: 'forwarder', filter: {}, entries: [], next: null, checked: new Set(), open: null };

  const summary = h('div');
  const dlqSelect = h('select', { name: 'dlq' }, h('option', { value: 'forwarder' }, 'forwarder'), h('option', { value: 'alerter' }, 'alerter'));
  const fError = field('Error contains', h('input', { name: 'error_contains', type: 'search', autocomplete: 'off' }));
  const fSource = field('Source id', h('input', { name: 'source_id', type: 'search', autocomplete: 'off', placeholder: '1700000000000-0' }));
  const fAge = field('Older than', h('input', { name: 'older_than', type: 'text', autocomplete: 'off', placeholder: '10m' }), { hint: 'A duration such as 30s, 10m, 2h.' });
  const parked = h('input', { type: 'checkbox', name: 'parked', id: 'dlq-parked' });
  const form = h(
    'form.filters',
    { 'aria-label': 'Filter dead letters' },
    field('Queue', dlqSelect).wrap,
    fError.wrap,
    fSource.wrap,
    fAge.wrap,
    h('div.field.check', null, parked, h('label', { for: 'dlq-parked' }, 'Parked letters')),
    h('div.actions', null, h('button.primary', { type: 'submit' }, 'Apply filter'), h('button', { type: 'button', onclick: clearFilter }, 'Clear')),
  );
  const formError = h('p.error', { role: 'alert', hidden: true });
  const count = h('p', { 'data-testid': 'dlq-count' });
  const bulk = h('div.actions.bulk');
  const list = h('div');
  const more = h('div.actions');
  const detail = h('section.detail', { 'aria-labelledby': 'dlq-detail-h', hidden: true });
  root.append(summary, form, formError, count, bulk, list, more, detail);

  // Applying the filter refreshes the depths too: the queues change under the page.
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    loadSummary();
    load();
  });

  function clearFilter() {
    for (const f of [fError, fSource, fAge]) f.input.value = '';
    parked.checked = false;
    load();
  }

  function readFilter() {
    return {
      error_contains: fError.input.value.trim(),
      source_id: fSource.input.value.trim(),
      older_than: fAge.input.value.trim(),
      parked: parked.checked,
    };
  }

  async function loadSummary() {
    try {
      const { dlqs } = await api('GET', '/dlq');
      replace(
        summary,
        table(
          'Dead-letter queues',
          ['Queue', 'Depth', 'Parked', 'Oldest letter'],
          dlqs.map((d) => h('tr', null, h('td', null, d.name), h('td.num', { 'data-testid': `dlq-depth-${d.name}` }, num(d.depth)), h('td.num', null, num(d.parked)), h('td', null, d.oldest_age_seconds === null ? '—' : age(d.oldest_age_seconds)))),
        ),
      );
    } catch (e) {
      replace(summary, h('p.error', null, `Could not list the DLQs: ${errorText(e)}`));
    }
  }

  async function load(append = false) {
    state.dlq = dlqSelect.value;
    state.filter = readFilter();
    for (const f of [fError, fSource, fAge]) f.setError('');
    formError.hidden = true;
    const params = { ...state.filter, limit: PAGE, after: append ? state.next : undefined };
    try {
      const page = await api('GET', `/dlq/${state.dlq}`, { params });
      if (!isCurrent()) return;
      state.entries = append ? state.entries.concat(page.entries) : page.entries;
      state.next = page.next;
      if (!append) state.checked.clear();
      draw();
    } catch (e) {
      const target = { error_contains: fError, source_id: fSource, older_than: fAge }[e.field];
      if (target) target.setError(e.message);
      else {
        formError.textContent = `Could not load the letters: ${errorText(e)}`;
        formError.hidden = false;
      }
    }
  }

  // The Selection body of a bulk action: the checked ids, or everything the filter
  // matches (`all` plus the filter fields that are set).
  function selection(kind) {
    const f = state.filter;
    if (kind === 'ids') return { ids: [...state.checked], parked: f.parked || undefined };
    const sel = { all: true, parked: f.parked || undefined };
    for (const k of ['error_contains', 'source_id', 'older_than']) if (f[k]) sel[k] = f[k];
    return sel;
  }

  // How many letters a selection takes, asked of the API (dry run); falls back to what
  // the page knows when the dry run is refused.
  async function countOf(action, sel) {
    try {
      const r = await api('POST', `/dlq/${state.dlq}/${action}`, { body: { ...sel, reason: 'dry run', dry_run: true } });
      if (r && typeof r.count === 'number') return r.count;
    } catch (e) {
      if (e.status === 401 || e.status === 403) throw e;
    }
    if (sel.ids) return sel.ids.length;
    return state.next ? null : state.entries.length;
  }

  async function bulkAction(action, kind) {
    const sel = selection(kind);
    let n;
    try {
      n = await countOf(action, sel);
    } catch (e) {
      announce(errorText(e), 'bad');
      return;
    }
    if (n === 0) {
      announce(`No dead letters match: nothing to ${action}.`, 'bad');
      return;
    }
    const what = n === null ? 'every matching dead letter' : `${n} dead letter${n === 1 ? '' : 's'}`;
    const verb = action === 'replay' ? 'Replay' : 'Purge';
    const ok = await confirm({
      title: `${verb} ${what}?`,
      message:
        action === 'replay'
          ? `${what[0].toUpperCase()}${what.slice(1)} in the ${state.dlq} DLQ will be appended to their source stream again and leave the DLQ.`
          : `${what[0].toUpperCase()}${what.slice(1)} in the ${state.dlq} DLQ will be deleted for good.`,
      action: `${verb} ${n === null ? 'all' : n}`,
      danger: action === 'purge',
    });
    if (!ok) return;
    try {
      const r = await api('POST', `/dlq/${state.dlq}/${action}`, { body: { ...sel, reason: ok.reason } });
      const done = action === 'replay' ? r.replayed : r.purged;
      announce(`${action === 'replay' ? 'Replayed' : 'Purged'} ${done} dead letter${done === 1 ? '' : 's'}`);
    } catch (e) {
      announce(`${verb} failed: ${errorText(e)}`, 'bad');
    }
    await Promise.all([loadSummary(), load()]);
  }

  async function oneAction(action, letter) {
    const verb = action === 'replay' ? 'Replay' : 'Purge';
    const ok = await confirm({
      title: `${verb} 1 dead letter?`,
      message: `Letter ${letter.id} of the ${state.dlq} DLQ will be ${action === 'replay' ? 'appended to its source stream again' : 'deleted for good'}.`,
      action: `${verb} 1`,
      danger: action === 'purge',
    });
    if (!ok) return;
    try {
      if (action === 'replay') {
        const r = await api('POST', `/dlq/${state.dlq}/replay`, { body: { ids: [letter.id], parked: state.filter.parked || undefined, reason: ok.reason } });
        announce(`Replayed ${r.replayed} dead letter${r.replayed === 1 ? '' : 's'}`);
      } else if (state.filter.parked) {
        const r = await api('POST', `/dlq/${state.dlq}/purge`, { body: { ids: [letter.id], parked: true, reason: ok.reason } });
        announce(`Purged ${r.purged} dead letter${r.purged === 1 ? '' : 's'}`);
      } else {
        await api('DELETE', `/dlq/${state.dlq}/${letter.id}`, { params: { reason: ok.reason } });
        announce('Purged 1 dead letter');
      }
    } catch (e) {
      announce(`${verb} failed: ${errorText(e)}`, 'bad');
    }
    if (state.open === letter.id) detail.hidden = true;
    await Promise.all([loadSummary(), load()]);
  }

  function showDetail(letter, opener) {
    state.open = letter.id;
    const prov = [
      ['Id', letter.id],
      ['Source stream', letter.source_stream],
      ['Source id', letter.source_id],
      ['Group', letter.group],
      ['Consumer', letter.consumer],
      ['Deliveries', letter.delivery_count],
      ['Replays', letter.replays],
      ['First failure', time(letter.first_failure_ms)],
      ['Last failure', time(letter.last_failure_ms)],
      ['Last error', letter.last_error],
      ['Parked because', letter.parked_reason],
      ['Parked at', letter.parked_at_ms ? time(letter.parked_at_ms) : null],
      ['Trace', letter.traceparent],
    ].filter(([, v]) => v !== null && v !== undefined);
    const payload = letter.payload !== null && letter.payload !== undefined ? pretty(letter.payload) : `Undecodable payload: ${letter.payload_error || 'unknown reason'}\n${letter.payload_base64 || ''}`;
    const close = h('button', { type: 'button' }, 'Close');
    close.addEventListener('click', () => {
      detail.hidden = true;
      state.open = null;
      opener?.focus();
    });
    replace(
      detail,
      h('h2', { id: 'dlq-detail-h', tabindex: '-1' }, `Letter ${letter.id}`),
      h('dl.props', null, prov.map(([k, v]) => [h('dt', null, k), h('dd', null, String(v))])),
      h('h3', null, 'Payload'),
      h('pre.payload', { tabindex: '0' }, payload),
      h('div.actions', null, writer ? [h('button', { type: 'button', onclick: () => oneAction('replay', letter) }, 'Replay'), h('button.danger', { type: 'button', onclick: () => oneAction('purge', letter) }, 'Purge')] : null, close),
    );
    detail.hidden = false;
    detail.querySelector('h2').focus();
  }

  function draw() {
    const n = state.entries.length;
    count.textContent = `${n}${state.next ? '+' : ''} dead letter${n === 1 ? '' : 's'} in the ${state.dlq} DLQ${state.filter.parked ? ' (parked)' : ''}${Object.entries(state.filter).some(([k, v]) => k !== 'parked' && v) ? ' match the filter' : ''}`;
    const rows = state.entries.map((l) => {
      const box = h('input', { type: 'checkbox', 'aria-label': `Select letter ${l.id}`, checked: state.checked.has(l.id) });
      box.addEventListener('change', () => {
        if (box.checked) state.checked.add(l.id);
        else state.checked.delete(l.id);
        drawBulk();
      });
      const show = h('button.link', { type: 'button' }, l.id);
      show.addEventListener('click', () => showDetail(l, show));
      const when = l.last_failure_ms || l.first_failure_ms;
      return h(
        'tr',
        { 'data-letter': l.id },
        writer ? h('td', null, box) : null,
        h('td.mono', null, show),
        h('td', null, when ? age((Date.now() - when) / 1000) : '—'),
        h('td.mono', null, l.source_id || '—'),
        h('td.num', null, num(l.delivery_count)),
        h('td.num', null, num(l.replays)),
        h('td.error-text', null, l.last_error || '—'),
      );
    });
    const head = ['Letter', 'Age', 'Source id', 'Deliveries', 'Replays', 'Last error'];
    replace(list, table(`Dead letters of the ${state.dlq} DLQ`, writer ? ['Select', ...head] : head, rows, { empty: 'No dead letters.' }));
    replace(more, state.next ? h('button', { type: 'button', onclick: () => load(true) }, 'Load more') : null);
    drawBulk();
  }

  function drawBulk() {
    if (!writer) {
      replace(bulk, h('p.muted', null, 'Replaying and purging need the write scope.'));
      return;
    }
    const k = state.checked.size;
    const any = state.entries.length > 0;
    replace(
      bulk,
      h('button', { type: 'button', disabled: !k, onclick: () => bulkAction('replay', 'ids') }, `Replay selected (${k})`),
      h('button.danger', { type: 'button', disabled: !k, onclick: () => bulkAction('purge', 'ids') }, `Purge selected (${k})`),
      h('button.primary', { type: 'button', disabled: !any, 'data-testid': 'replay-all', onclick: () => bulkAction('replay', 'all') }, 'Replay all matching'),
      h('button.danger', { type: 'button', disabled: !any, 'data-testid': 'purge-all', onclick: () => bulkAction('purge', 'all') }, 'Purge all matching'),
    );
  }

  dlqSelect.addEventListener('change', () => load());
  await Promise.all([loadSummary(), load()]);
}
