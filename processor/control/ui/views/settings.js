// Settings: every hot setting with its value, default, bounds and description; a change
// with a reason (PUT /config/{key}) makes a new versioned snapshot that every process
// applies on its own. After a change the view polls GET /config/versions and shows, per
// process, whether it applied the new version, until all did.

import { errorText } from '../api.js';
import { h, replace, table, field, time } from '../dom.js';

const POLL_MS = 1000;
const GIVE_UP_MS = 120000;

export async function render(root, { api, can, announce, isCurrent }) {
  const writer = can('write');
  let settings = [];
  let timer = null;
  let stopped = false;

  const keySel = h('select', { name: 'key' });
  const fKey = field('Setting', keySel);
  const fValue = field('New value', h('input', { name: 'value', type: 'text', autocomplete: 'off', spellcheck: 'false' }));
  const fReason = field('Reason', h('input', { name: 'reason', type: 'text', maxlength: '1000', required: true }), { hint: 'Required; kept in the audit trail.' });
  const about = h('p.hint', { 'aria-live': 'polite' });
  const formError = h('p.error', { role: 'alert', hidden: true });
  const form = h('form.grid-form', { 'aria-labelledby': 'set-form-h', novalidate: true }, fKey.wrap, fValue.wrap, fReason.wrap, about, formError, h('div.actions', null, h('button.primary', { type: 'submit' }, 'Change setting')));
  const convergence = h('section', null);
  const listBox = h('div');
  root.append(
    writer ? h('section', null, h('h2', { id: 'set-form-h' }, 'Change a setting'), form) : h('p.muted', null, 'Changing settings needs the write scope.'),
    convergence,
    h('section', null, h('h2', { id: 'set-list-h' }, 'Hot settings'), listBox),
  );

  function describe() {
    const s = settings.find((x) => x.key === keySel.value);
    about.textContent = s ? `Now ${s.value} (default ${s.default}); ${s.type}. ${s.description}` : '';
  }
  keySel.addEventListener('change', () => {
    describe();
    const s = settings.find((x) => x.key === keySel.value);
    if (s) fValue.input.value = s.value;
  });

  function choose(key) {
    keySel.value = key;
    keySel.dispatchEvent(new Event('change'));
    fValue.input.focus();
    fValue.input.select();
  }

  async function loadSettings() {
    const cfg = await api('GET', '/config');
    if (!isCurrent()) return;
    settings = cfg.settings || [];
    const keep = keySel.value;
    replace(keySel, settings.map((s) => h('option', { value: s.key }, s.key)));
    if (keep) keySel.value = keep;
    describe();
    replace(
      listBox,
      h('p.muted', null, `Snapshot version ${cfg.version}.`),
      table(
        'Hot settings',
        ['Setting', 'Value', 'Default', 'Type and bounds', 'Roles', 'Description', ...(writer ? ['Actions'] : [])],
        settings.map((s) =>
          h(
            'tr',
            { 'data-setting': s.key },
            h('td.mono', null, s.key),
            h('td.mono', null, s.value, s.overridden ? h('span.badge', null, 'set') : null),
            h('td.mono', null, s.default),
            h('td.small', null, s.type),
            h('td', null, (s.roles || []).join(', ')),
            h('td.small', null, s.description),
            writer ? h('td', null, h('button', { type: 'button', 'aria-label': `Change ${s.key}`, onclick: () => choose(s.key) }, 'Change')) : null,
          ),
        ),
      ),
    );
  }

  // Each watch has a generation: a newer change supersedes the watch of an older one, and
  // an answer that arrives for a superseded watch is dropped, so the page never shows an
  // older version's "Converged" after a newer change.
  let generation = 0;

  // Shows which processes applied `version`; polls until every live one did.
  async function watch(version, startedAt, gen = ++generation) {
    if (stopped || gen !== generation) return;
    try {
      const v = await api('GET', '/config/versions');
      if (stopped || gen !== generation) return;
      const procs = v.consumers || [];
      const applied = procs.filter((p) => p.version >= version).length;
      const done = procs.length > 0 && applied === procs.length;
      const text = done ? `Converged: all ${procs.length} processes applied version ${version}.` : `${applied} of ${procs.length} processes applied version ${version}…`;
      replace(
        convergence,
        h('h2', { id: 'conv-h' }, 'Convergence'),
        h('p', { class: `convergence ${done ? 'good' : ''}`, 'data-testid': 'convergence', 'data-converged': done ? 'true' : 'false' }, text),
        table(
          'Config version applied by each process',
          ['Process', 'Roles', 'Applied version', 'State', 'Last report'],
          procs.map((p) => h('tr', null, h('td.mono', null, p.consumer), h('td', null, (p.roles || []).join(', ')), h('td.num', null, p.version), h('td', null, h('span', { class: `badge ${p.version >= version ? 'good' : ''}` }, p.version >= version ? 'applied' : 'pending')), h('td', null, time(p.seen_ms)))),
          { empty: 'No live process reported.' },
        ),
      );
      if (done) {
        announce(text);
        return;
      }
      if (Date.now() - startedAt > GIVE_UP_MS) {
        convergence.append(h('p.error', null, 'Stopped waiting after 2 minutes; some process has not applied the change. Check that it runs.'));
        return;
      }
    } catch (e) {
      convergence.append(h('p.error', null, `Could not read the versions: ${errorText(e)}`));
    }
    timer = setTimeout(() => watch(version, startedAt, gen), POLL_MS);
  }

  // What the page says between a change and the first answer about it.
  function waitingFor(version) {
    replace(
      convergence,
      h('h2', { id: 'conv-h' }, 'Convergence'),
      h('p', { class: 'convergence', 'data-testid': 'convergence', 'data-converged': 'false' }, `Waiting for the processes to apply version ${version}…`),
    );
  }

  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    for (const x of [fValue, fReason]) x.setError('');
    formError.hidden = true;
    const key = keySel.value;
    const value = fValue.input.value.trim();
    const reason = fReason.input.value.trim();
    if (!value) {
      fValue.setError('Give a value.');
      fValue.input.focus();
      return;
    }
    if (!reason) {
      fReason.setError('Say why: the reason is recorded with the change.');
      fReason.input.focus();
      return;
    }
    try {
      const r = await api('PUT', `/config/${encodeURIComponent(key)}`, { body: { value, reason } });
      announce(`Changed ${r.key} from ${r.old_value} to ${r.new_value} (version ${r.version})`);
      fReason.input.value = '';
      clearTimeout(timer);
      const gen = ++generation;
      waitingFor(r.version);
      await loadSettings();
      watch(r.version, Date.now(), gen);
    } catch (ex) {
      // A refused value is the value's fault unless the API names another field.
      const target = ex.field === 'reason' ? fReason : ex.status === 400 ? fValue : null;
      if (target) {
        target.setError(ex.message);
        target.input.focus();
      } else {
        formError.textContent = errorText(ex);
        formError.hidden = false;
      }
    }
  });

  await loadSettings();
  // Show where the processes stand now, too (the last change may still be converging).
  const v0 = await api('GET', '/config/versions').catch(() => null);
  if (v0 && !stopped) watch(v0.version, Date.now());
  return () => {
    stopped = true;
    clearTimeout(timer);
  };
}
