// Secrets and keys (admin): each rotatable secret's phase, generation and what every
// process applied, with the rotation steps (stage → promote → retire, or rollback), each
// confirmed; and the API keys: list, create (the key is shown once, here, and stored
// nowhere), revoke.

import { errorText } from '../api.js';
import { h, replace, table, field, confirm } from '../dom.js';

const SCOPES = ['read', 'write', 'admin', 'ingest'];
const STEPS = {
  stage: 'Every process learns the new value and keeps using the current one.',
  promote: 'Everything new uses the new value; the current one is still accepted.',
  retire: 'The old value is dropped and no longer accepted.',
  rollback: 'Goes back one step (promoted → staged, staged → stable).',
};

export async function render(root, { api, announce, isCurrent }) {
  const secretsBox = h('div');
  const keysBox = h('div');
  const created = h('div', { 'aria-live': 'polite' });
  const fName = field('Name', h('input', { name: 'name', type: 'text', autocomplete: 'off', maxlength: '100', pattern: '[A-Za-z0-9._:@-]+' }), { hint: 'Letters, digits or - _ . : @' });
  const scopeBoxes = SCOPES.map((s) => h('input', { type: 'checkbox', name: 'scopes', value: s, id: `scope-${s}`, checked: s === 'read' }));
  const scopeSet = h('fieldset', null, h('legend', null, 'Scopes'), scopeBoxes.map((b) => h('span.check', null, b, h('label', { for: b.id }, b.value))));
  const scopeErr = h('p.field-error', { id: 'scopes-err', hidden: true });
  const fReason = field('Reason', h('input', { name: 'reason', type: 'text', maxlength: '1000' }));
  const keyError = h('p.error', { role: 'alert', hidden: true });
  const keyForm = h('form.grid-form', { 'aria-labelledby': 'key-new-h', novalidate: true }, fName.wrap, scopeSet, scopeErr, fReason.wrap, keyError, h('div.actions', null, h('button.primary', { type: 'submit' }, 'Create key')));

  root.append(
    h('section', null, h('h2', { id: 'secrets-h' }, 'Secrets'), h('p.muted', null, 'Values are never shown. Take the next step once every process applied the previous one.'), secretsBox),
    h('section', null, h('h2', { id: 'keys-h' }, 'API keys'), keysBox),
    h('section', null, h('h2', { id: 'key-new-h' }, 'New API key'), keyForm, created),
  );

  async function step(secret, name) {
    const extra = [];
    if (name === 'stage') extra.push({ name: 'value', label: 'New value', input: h('input', { type: 'password', autocomplete: 'new-password', required: true }) });
    const ok = await confirm({
      title: `${name[0].toUpperCase()}${name.slice(1)} ${secret.name}?`,
      message: `${STEPS[name]} This affects 1 secret and every process that uses it (${(secret.processes || []).length} now).`,
      action: `${name[0].toUpperCase()}${name.slice(1)}`,
      danger: name === 'retire' || name === 'rollback',
      extra,
    });
    if (!ok) return;
    const body = { step: name, reason: ok.reason };
    if (name === 'stage') body.value = ok.value;
    try {
      const r = await api('POST', `/secrets/${secret.name}/rotate`, { body });
      announce(`${secret.name}: ${name} done; phase ${r.phase}, generation ${r.generation}`);
    } catch (e) {
      announce(`${secret.name}: ${name} refused: ${errorText(e)}`, 'bad');
    }
    await loadSecrets();
  }

  async function loadSecrets() {
    let list;
    try {
      ({ secrets: list } = await api('GET', '/secrets'));
    } catch (e) {
      replace(secretsBox, h('p.error', null, `Could not read the secrets: ${errorText(e)}`));
      return;
    }
    if (!isCurrent()) return;
    replace(
      secretsBox,
      table(
        'Secrets',
        ['Secret', 'Phase', 'Generation', 'Next step', 'Processes (generation)', 'Converged', 'Steps'],
        list.map((s) => {
          if (!s.configured) return h('tr', null, h('td.mono', null, s.name), h('td', { colspan: '6' }, 'not configured'));
          const steps = ['stage', 'promote', 'retire'].filter((x) => x === s.next_step);
          if (s.phase !== 'stable') steps.push('rollback');
          return h(
            'tr',
            { 'data-secret': s.name },
            h('td.mono', null, s.name),
            h('td', null, s.phase),
            h('td.num', null, s.generation),
            h('td', null, s.next_step),
            h('td.small', null, (s.processes || []).map((p) => `${p.consumer}: ${p.generation ?? '—'}`).join(' · ') || '—'),
            h('td', null, h('span', { class: `badge ${s.converged ? 'good' : ''}` }, s.converged ? 'yes' : 'not yet')),
            h('td.row-actions', null, steps.map((x) => h(`button${x === 'rollback' ? '.danger' : ''}`, { type: 'button', 'aria-label': `${x} ${s.name}`, onclick: () => step(s, x) }, x))),
          );
        }),
      ),
    );
  }

  async function revoke(k) {
    const ok = await confirm({ title: `Revoke ${k.name}?`, message: `Every live key named ${k.name} stops working at once (1 name).`, action: 'Revoke', danger: true });
    if (!ok) return;
    try {
      await api('DELETE', `/keys/${encodeURIComponent(k.name)}`, { params: { reason: ok.reason } });
      announce(`Revoked ${k.name}`);
    } catch (e) {
      announce(`Revoke refused: ${errorText(e)}`, 'bad');
    }
    await loadKeys();
  }

  async function loadKeys() {
    let keys;
    try {
      ({ keys } = await api('GET', '/keys'));
    } catch (e) {
      replace(keysBox, h('p.error', null, `Could not list the keys: ${errorText(e)}`));
      return;
    }
    if (!isCurrent()) return;
    const fmt = (t) => (t ? new Date(t).toLocaleString() : '—');
    replace(
      keysBox,
      table(
        'API keys',
        ['Name', 'Scopes', 'Created', 'By', 'Expires', 'Revoked', 'Actions'],
        keys.map((k) =>
          h(
            'tr',
            { 'data-key': k.name },
            h('td.mono', null, k.name),
            h('td', null, k.scopes.join(', ')),
            h('td', null, fmt(k.created_at)),
            h('td', null, k.created_by),
            h('td', null, fmt(k.expires_at)),
            h('td', null, fmt(k.revoked_at)),
            h('td', null, k.revoked_at ? null : h('button.danger', { type: 'button', 'aria-label': `Revoke ${k.name}`, onclick: () => revoke(k) }, 'Revoke')),
          ),
        ),
        { empty: 'No keys besides the bootstrap key.' },
      ),
    );
  }

  keyForm.addEventListener('submit', async (e) => {
    e.preventDefault();
    fName.setError('');
    scopeErr.hidden = true;
    keyError.hidden = true;
    const scopes = scopeBoxes.filter((b) => b.checked).map((b) => b.value);
    const name = fName.input.value.trim();
    if (!name) {
      fName.setError('Give the key a name.');
      fName.input.focus();
      return;
    }
    if (!scopes.length) {
      scopeErr.textContent = 'Choose at least one scope.';
      scopeErr.hidden = false;
      return;
    }
    try {
      const r = await api('POST', '/keys', { body: { name, scopes, reason: fReason.input.value.trim() || undefined } });
      keyForm.reset();
      showOnce(r);
      announce(`Created key ${r.name}`);
      await loadKeys();
    } catch (ex) {
      if (ex.field === 'name' || ex.status === 409) {
        fName.setError(ex.message);
        fName.input.focus();
      } else {
        keyError.textContent = errorText(ex);
        keyError.hidden = false;
      }
    }
  });

  // The new key, once: a read-only field to copy it from, and a warning; nothing keeps
  // it (navigating away drops it).
  function showOnce(r) {
    const out = h('input.secret', { type: 'text', readonly: true, id: 'new-key', value: r.key, spellcheck: 'false', 'data-testid': 'new-key' });
    const copy = h('button', { type: 'button' }, 'Copy');
    copy.addEventListener('click', async () => {
      out.select();
      try {
        await navigator.clipboard.writeText(r.key);
        announce('Copied the key');
      } catch {
        announce('Select the key and copy it (Ctrl+C).', 'bad');
      }
    });
    const done = h('button', { type: 'button' }, 'I saved it: hide the key');
    done.addEventListener('click', () => replace(created));
    replace(
      created,
      h(
        'div.once',
        { role: 'group', 'aria-labelledby': 'once-h' },
        h('h3', { id: 'once-h' }, `Key ${r.name} (${r.scopes.join(', ')})`),
        h('p.warning', null, 'Copy this key now: it will not be shown again. MUTT stores only its digest.'),
        h('div.field', null, h('label', { for: 'new-key' }, 'The new key'), out),
        h('div.actions', null, copy, done),
      ),
    );
    out.focus();
    out.select();
  }

  await Promise.all([loadSecrets(), loadKeys()]);
}
