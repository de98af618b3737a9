// Rules: the list in the order the alerters try them (lower priority first, then lower
// id), a form to create or edit one (the API's validation error is shown on the field it
// names), deactivate/activate and delete, and the rule tester (POST /rules/test: which
// rule an event matches and why; changes nothing).

import { errorText } from '../api.js';
import { h, replace, table, field, confirm } from '../dom.js';

const SEVERITIES = ['emergency', 'alert', 'critical', 'error', 'warning', 'notice', 'informational', 'debug'];

function sampleEvent() {
  return JSON.stringify(
    {
      hostname: 'core-router-01.example.com',
      message: '%LINEPROTO-5-UPDOWN: Line protocol on Interface GigabitEthernet0/1, changed state to down',
      timestamp: new Date().toISOString(),
      syslog_severity: 'warning',
    },
    null,
    2,
  );
}

export async function render(root, { api, can, announce, isCurrent }) {
  const writer = can('write');
  let rules = [];
  let editing = null; // the rule being edited, or null for a new one

  const listBox = h('div');
  const formBox = h('section', null);
  const tester = h('section', null);
  root.append(h('section', null, h('h2', { id: 'rules-h' }, 'Rules in priority order'), listBox), writer ? formBox : null, tester);

  // --- the form -------------------------------------------------------------------
  const f = {
    match_type: field('Match type', h('select', { name: 'match_type' }, ['contains', 'regex', 'oid_prefix'].map((t) => h('option', { value: t }, t)))),
    match_string: field('Match string', h('input', { name: 'match_string', type: 'text', autocomplete: 'off', spellcheck: 'false' }), { hint: 'Text (contains) or a regular expression, matched case-insensitively against the message.' }),
    trap_oid: field('Trap OID', h('input', { name: 'trap_oid', type: 'text', autocomplete: 'off', placeholder: '1.3.6.1.4.1.9' })),
    syslog_severity: field('Syslog severity', h('select', { name: 'syslog_severity' }, h('option', { value: '' }, 'any'), SEVERITIES.map((s, i) => h('option', { value: String(i) }, `${i} ${s}`)))),
    priority: field('Priority', h('input', { name: 'priority', type: 'number', step: '1', value: '100' }), { hint: 'Lower wins; ties go to the lower id.' }),
    prod_handling: field('Production handling', h('input', { name: 'prod_handling', type: 'text', value: 'page_and_ticket', list: 'handlings' })),
    dev_handling: field('Development handling', h('input', { name: 'dev_handling', type: 'text', value: 'ticket_only', list: 'handlings' })),
    team_assignment: field('Team', h('input', { name: 'team_assignment', type: 'text' })),
    reason: field('Reason', h('input', { name: 'reason', type: 'text', maxlength: '1000' }), { hint: 'Kept in the audit trail.' }),
  };
  const active = h('input', { type: 'checkbox', id: 'rule-active', name: 'is_active', checked: true });
  const formTitle = h('h2', { id: 'rule-form-h', tabindex: '-1' }, 'New rule');
  const formError = h('p.error', { role: 'alert', hidden: true });
  const submit = h('button.primary', { type: 'submit' }, 'Create rule');
  const cancelEdit = h('button', { type: 'button', hidden: true }, 'Cancel edit');
  const form = h(
    'form.grid-form',
    { 'aria-labelledby': 'rule-form-h', novalidate: true },
    Object.values(f).map((x) => x.wrap),
    h('div.field.check', null, active, h('label', { for: 'rule-active' }, 'Active')),
    h('datalist', { id: 'handlings' }, ['page_and_ticket', 'page_only', 'ticket_only', 'Ignore'].map((v) => h('option', { value: v }))),
    formError,
    h('div.actions', null, submit, cancelEdit),
  );
  replace(formBox, formTitle, form);

  function resetForm() {
    editing = null;
    form.reset();
    f.priority.input.value = '100';
    f.prod_handling.input.value = 'page_and_ticket';
    f.dev_handling.input.value = 'ticket_only';
    active.checked = true;
    formTitle.textContent = 'New rule';
    submit.textContent = 'Create rule';
    cancelEdit.hidden = true;
    clearErrors();
  }

  function clearErrors() {
    for (const x of Object.values(f)) x.setError('');
    formError.hidden = true;
  }

  function edit(rule) {
    resetForm();
    editing = rule;
    f.match_type.input.value = rule.match_type;
    f.match_string.input.value = rule.match_string ?? '';
    f.trap_oid.input.value = rule.trap_oid ?? '';
    f.syslog_severity.input.value = rule.syslog_severity === null ? '' : String(rule.syslog_severity);
    f.priority.input.value = String(rule.priority);
    f.prod_handling.input.value = rule.prod_handling;
    f.dev_handling.input.value = rule.dev_handling;
    f.team_assignment.input.value = rule.team_assignment;
    active.checked = rule.is_active;
    formTitle.textContent = `Edit rule ${rule.id}`;
    submit.textContent = 'Save rule';
    cancelEdit.hidden = false;
    formTitle.focus();
  }
  cancelEdit.addEventListener('click', resetForm);

  // Shows a refusal on the field it names (`match_string`, `priority`, …), else above the
  // buttons; focus goes to the field so the message is read out.
  function showError(e) {
    const target = e.field && f[e.field];
    if (target) {
      target.setError(e.message);
      target.input.focus();
    } else {
      formError.textContent = errorText(e);
      formError.hidden = false;
    }
  }

  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    clearErrors();
    const v = (k) => f[k].input.value.trim();
    const prio = v('priority');
    const body = {
      match_type: v('match_type'),
      match_string: v('match_string') || null,
      trap_oid: v('trap_oid') || null,
      syslog_severity: v('syslog_severity') === '' ? null : Number(v('syslog_severity')),
      priority: prio === '' ? undefined : Number(prio),
      prod_handling: v('prod_handling'),
      dev_handling: v('dev_handling'),
      team_assignment: v('team_assignment'),
      is_active: active.checked,
      reason: v('reason') || undefined,
    };
    if (prio !== '' && !Number.isInteger(body.priority)) {
      f.priority.setError('priority: a whole number');
      f.priority.input.focus();
      return;
    }
    try {
      const r = editing ? await api('PUT', `/rules/${editing.id}`, { body }) : await api('POST', '/rules', { body });
      announce(editing ? `Saved rule ${r.id}` : `Created rule ${r.id}`);
      resetForm();
      await loadRules();
    } catch (ex) {
      showError(ex);
    }
  });

  // --- the list -------------------------------------------------------------------
  async function setActive(rule, on) {
    const ok = await confirm({
      title: `${on ? 'Activate' : 'Deactivate'} rule ${rule.id}?`,
      message: `1 rule will ${on ? 'be tried again' : 'no longer be tried'} by the alerters.`,
      action: on ? 'Activate' : 'Deactivate',
    });
    if (!ok) return;
    try {
      await api('PUT', `/rules/${rule.id}`, { body: { is_active: on, reason: ok.reason } });
      announce(`Rule ${rule.id} ${on ? 'activated' : 'deactivated'}`);
    } catch (e) {
      announce(errorText(e), 'bad');
    }
    await loadRules();
  }

  async function remove(rule) {
    const ok = await confirm({
      title: `Delete rule ${rule.id}?`,
      message: `1 rule (${rule.match_type} “${rule.match_string ?? rule.trap_oid ?? ''}”) will be deleted.`,
      action: 'Delete 1 rule',
      danger: true,
    });
    if (!ok) return;
    try {
      await api('DELETE', `/rules/${rule.id}`, { params: { reason: ok.reason } });
      announce(`Deleted rule ${rule.id}`);
      if (editing && editing.id === rule.id) resetForm();
    } catch (e) {
      announce(errorText(e), 'bad');
    }
    await loadRules();
  }

  async function loadRules() {
    try {
      ({ rules } = await api('GET', '/rules'));
    } catch (e) {
      replace(listBox, h('p.error', null, `Could not list the rules: ${errorText(e)}`));
      return;
    }
    if (!isCurrent()) return;
    const head = ['Id', 'Priority', 'Type', 'Match', 'Severity', 'Production', 'Development', 'Team', 'Active'];
    replace(
      listBox,
      h('p.muted', null, `${rules.length} rule${rules.length === 1 ? '' : 's'}; the first active rule that matches wins.`),
      table(
        'Rules',
        writer ? [...head, 'Actions'] : head,
        rules.map((r) =>
          h(
            'tr',
            { 'data-rule': r.id, class: r.is_active ? '' : 'inactive' },
            h('td.num', null, r.id),
            h('td.num', null, r.priority),
            h('td', null, r.match_type),
            h('td.mono', null, r.match_string ?? r.trap_oid ?? '—'),
            h('td', null, r.syslog_severity === null ? 'any' : `${r.syslog_severity} ${SEVERITIES[r.syslog_severity] || ''}`),
            h('td', null, r.prod_handling),
            h('td', null, r.dev_handling),
            h('td', null, r.team_assignment),
            h('td', null, r.is_active ? 'yes' : 'no'),
            writer
              ? h(
                  'td.row-actions',
                  null,
                  h('button', { type: 'button', 'aria-label': `Edit rule ${r.id}`, onclick: () => edit(r) }, 'Edit'),
                  h('button', { type: 'button', 'aria-label': `${r.is_active ? 'Deactivate' : 'Activate'} rule ${r.id}`, onclick: () => setActive(r, !r.is_active) }, r.is_active ? 'Deactivate' : 'Activate'),
                  h('button.danger', { type: 'button', 'aria-label': `Delete rule ${r.id}`, onclick: () => remove(r) }, 'Delete'),
                )
              : null,
          ),
        ),
        { empty: 'No rules: every event is unhandled.' },
      ),
    );
  }

  // --- the tester -----------------------------------------------------------------
  const ev = field('Event (JSON)', h('textarea.code', { name: 'event', rows: '8', spellcheck: 'false' }), { hint: 'As POST /api/v2/ingest takes one: hostname, message, timestamp, optional syslog_severity and trap_oid.' });
  ev.input.value = sampleEvent();
  const verdict = h('div', { 'aria-live': 'polite', 'data-testid': 'rule-test-result' });
  const testForm = h('form', { 'aria-labelledby': 'rule-test-h', novalidate: true }, ev.wrap, h('div.actions', null, h('button.primary', { type: 'submit' }, 'Test event')));
  replace(tester, h('h2', { id: 'rule-test-h' }, 'Rule tester'), h('p.muted', null, 'Which rule an event matches, and why. Nothing is sent or recorded.'), testForm, verdict);

  testForm.addEventListener('submit', async (e) => {
    e.preventDefault();
    ev.setError('');
    let event;
    try {
      event = JSON.parse(ev.input.value);
    } catch (ex) {
      ev.setError(`Not JSON: ${ex.message}`);
      ev.input.focus();
      return;
    }
    try {
      const x = await api('POST', '/rules/test', { body: { event } });
      const line =
        x.verdict === 'handled'
          ? `Matched rule ${x.rule_id}: ${x.handling} for team ${x.team} (${x.forwarded ? 'forwarded to the webhook' : 'audited only'}); ${x.host} host, webhook severity ${x.webhook_severity}.`
          : `Unhandled: no rule matches. Fingerprint ${x.fingerprint}; ${x.counter ? `${x.counter.count} of ${x.counter.threshold} toward a meta-alert in ${x.counter.window}` : ''}${x.team ? ` for team ${x.team}` : ''}.`;
      replace(
        verdict,
        h('p', { class: `verdict ${x.verdict}`, 'data-testid': 'rule-test-verdict' }, line),
        table(
          'Rules tried',
          ['Rule', 'Priority', 'Match', 'Outcome', 'Why'],
          (x.rules || []).map((r) =>
            h(
              'tr',
              { class: r.outcome === 'matched' ? 'matched' : '' },
              h('td.num', null, r.id),
              h('td.num', null, r.priority),
              h('td.mono', null, r.match_string ?? r.trap_oid ?? '—'),
              h('td', null, r.outcome.replace(/_/g, ' '), r.outcome === 'not_reached' && r.would_match ? ' (would match)' : ''),
              h('td', null, r.detail),
            ),
          ),
        ),
      );
    } catch (ex) {
      replace(verdict);
      ev.setError(errorText(ex));
      ev.input.focus();
    }
  });

  await loadRules();
}
