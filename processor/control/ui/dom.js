// DOM helpers. Everything is built with createElement and textContent: event payloads,
// error texts and rule patterns are untrusted, so nothing is ever parsed as HTML.

// h('tag.class', {attr: value, onclick: fn}, ...children). Children are nodes or text;
// null/false are skipped. `class`, `text`, `on*` and boolean attributes are handled here.
export function h(tag, attrs, ...children) {
  const [name, ...classes] = tag.split('.');
  const el = document.createElement(name);
  if (classes.length) el.className = classes.join(' ');
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on') && typeof v === 'function') {
      el.addEventListener(k.slice(2), v);
    } else if (k === 'class') {
      el.className = [el.className, v].filter(Boolean).join(' ');
    } else if (k === 'text') {
      el.textContent = v;
    } else if (k === 'value' || k === 'checked') {
      el[k] = v;
    } else if (k === 'style') {
      // Never a style attribute: the CSP (style-src 'self') would refuse it.
      throw new Error('use classes, not style attributes');
    } else {
      el.setAttribute(k, v === true ? '' : String(v));
    }
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

// Replaces the children of `el`.
export function replace(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

// A table in a horizontally scrolling, keyboard-focusable region (narrow screens scroll
// the table, not the page). `head` is a list of column titles; `rows` a list of row
// nodes.
export function table(label, head, rows, { empty = 'Nothing to show.' } = {}) {
  const body = h('tbody', null, rows);
  if (!rows.length) body.append(h('tr', null, h('td', { colspan: head.length, class: 'empty' }, empty)));
  return h(
    'div.table-wrap',
    { role: 'region', 'aria-label': label, tabindex: '0' },
    h('table', null, h('caption.visually-hidden', null, label), h('thead', null, h('tr', null, head.map((t) => h('th', { scope: 'col' }, t)))), body),
  );
}

// A labelled input with a place for its error (shown with the API's message when the
// API names this field). Returns {wrap, input, setError}.
export function field(label, input, { hint, id } = {}) {
  const fid = id || input.id || `f-${Math.random().toString(36).slice(2)}`;
  input.id = fid;
  const err = h('p.field-error', { id: `${fid}-err`, hidden: true });
  const hintEl = hint ? h('p.hint', { id: `${fid}-hint` }, hint) : null;
  input.setAttribute('aria-describedby', [hintEl && hintEl.id, err.id].filter(Boolean).join(' '));
  const wrap = h('div.field', null, h('label', { for: fid }, label), input, hintEl, err);
  const setError = (msg) => {
    err.textContent = msg || '';
    err.hidden = !msg;
    if (msg) input.setAttribute('aria-invalid', 'true');
    else input.removeAttribute('aria-invalid');
  };
  return { wrap, input, setError };
}

// Human durations ("3m 20s") for ages in seconds.
export function age(seconds) {
  if (seconds === null || seconds === undefined || Number.isNaN(seconds)) return '—';
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m ${s % 60}s`;
  if (s < 86400) return `${Math.floor(s / 3600)}h ${Math.floor((s % 3600) / 60)}m`;
  return `${Math.floor(s / 86400)}d ${Math.floor((s % 86400) / 3600)}h`;
}

export function time(ms) {
  if (ms === null || ms === undefined) return '—';
  const d = new Date(ms);
  return Number.isNaN(d.getTime()) ? String(ms) : d.toLocaleString();
}

export function num(n, digits = 0) {
  if (n === null || n === undefined || Number.isNaN(n)) return '—';
  return Number(n).toLocaleString(undefined, { maximumFractionDigits: digits, minimumFractionDigits: digits });
}

export function pct(x, digits = 2) {
  if (x === null || x === undefined) return '—';
  return `${(x * 100).toFixed(digits)}%`;
}

// JSON pretty-printed as text (for payloads and audit values).
export function pretty(v) {
  if (v === null || v === undefined) return '—';
  return typeof v === 'string' ? v : JSON.stringify(v, null, 2);
}

// A confirmation in a native modal <dialog>: says what happens and to how many, and asks
// for the reason MUTT records in the audit trail. `extra` adds inputs (e.g. a secret's
// new value). Resolves to {reason, ...extra values} or null when cancelled.
export function confirm({ title, message, action = 'Confirm', danger = false, extra = [], reasonRequired = true }) {
  return new Promise((resolve) => {
    const reason = h('textarea', { name: 'reason', rows: '2', maxlength: '1000', required: reasonRequired });
    const reasonField = field(reasonRequired ? 'Reason (required, kept in the audit trail)' : 'Reason (kept in the audit trail)', reason);
    const extras = extra.map((x) => ({ ...x, f: field(x.label, x.input) }));
    const ok = h(`button.${danger ? 'danger' : 'primary'}`, { type: 'submit' }, action);
    const cancel = h('button', { type: 'button' }, 'Cancel');
    const titleId = `dlg-${Math.random().toString(36).slice(2)}`;
    const form = h(
      'form.dialog-form',
      null,
      h('h2', { id: titleId }, title),
      h('p.dialog-message', null, message),
      extras.map((x) => x.f.wrap),
      reasonField.wrap,
      h('div.actions', null, ok, cancel),
    );
    const dlg = h('dialog', { 'aria-labelledby': titleId }, form);
    let result = null;
    form.addEventListener('submit', (e) => {
      e.preventDefault();
      if (reasonRequired && !reason.value.trim()) {
        reasonField.setError('Say why: the reason is recorded with the change.');
        reason.focus();
        return;
      }
      result = { reason: reason.value.trim() };
      for (const x of extras) result[x.name] = x.input.value;
      dlg.close();
    });
    cancel.addEventListener('click', () => dlg.close());
    dlg.addEventListener('close', () => {
      dlg.remove();
      resolve(result);
    });
    document.body.append(dlg);
    dlg.showModal();
    (extras[0]?.input || reason).focus();
  });
}
