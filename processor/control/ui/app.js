// The shell: sign-in, who is signed in, the navigation and the hash router. Each view is
// a module under views/ exporting `render(root, ctx)`, which may return a function that
// stops what the view started (polling timers) when the user navigates away.

import { api, ApiError, errorText, getKey, setKey, clearKey } from './api.js';
import { h } from './dom.js';

const VIEWS = {
  overview: { title: 'Overview', load: () => import('./views/overview.js') },
  dlq: { title: 'Dead letters', load: () => import('./views/dlq.js') },
  rules: { title: 'Rules', load: () => import('./views/rules.js') },
  settings: { title: 'Settings', load: () => import('./views/settings.js') },
  audit: { title: 'Audit', load: () => import('./views/audit.js') },
  secrets: { title: 'Secrets and keys', load: () => import('./views/secrets.js'), scope: 'admin' },
};

const $ = (id) => document.getElementById(id);
let user = null; // {name, scopes}
let cleanup = null;
let renderSeq = 0;

// admin implies write implies read (as the API grants them; whoami's `allows` lists the
// implied scopes too, when given).
function can(scope) {
  if (!user) return false;
  const s = user.allows || user.scopes || [];
  if (s.includes('admin')) return true;
  if (scope === 'read') return s.includes('read') || s.includes('write');
  return s.includes(scope);
}

let statusTimer = null;
// Announces a result in the polite live region (and shows it).
function announce(message, kind = 'ok') {
  const el = $('status');
  el.className = `status ${kind}`;
  // Emptied first so that the same message twice is announced twice.
  el.textContent = '';
  requestAnimationFrame(() => {
    el.textContent = message;
  });
  clearTimeout(statusTimer);
  statusTimer = setTimeout(() => {
    el.textContent = '';
  }, 15000);
}

function showSignIn(message) {
  stopView();
  user = null;
  $('who').hidden = true;
  $('nav').hidden = true;
  $('view').replaceChildren();
  $('sign-in').hidden = false;
  const err = $('sign-in-error');
  err.textContent = message || '';
  err.hidden = !message;
  document.title = 'Sign in · MUTT console';
  $('api-key').value = '';
  $('api-key').focus();
}

function stopView() {
  if (typeof cleanup === 'function') cleanup();
  cleanup = null;
}

async function signIn(key) {
  const me = await api('GET', '/whoami', { key });
  setKey(key);
  user = { name: me.name, scopes: me.scopes || [], allows: me.allows };
  $('sign-in').hidden = true;
  $('who-name').textContent = `Signed in as ${user.name} (${user.scopes.join(', ') || 'no scopes'})`;
  $('who').hidden = false;
  for (const li of $('nav').querySelectorAll('[data-scope]')) li.hidden = !can(li.dataset.scope);
  $('nav').hidden = false;
  if (!location.hash || location.hash === '#' || location.hash === '#/') location.hash = '#/overview';
  else route();
}

async function route() {
  if (!user) return;
  const name = (location.hash.match(/^#\/([a-z]+)/) || [])[1] || 'overview';
  const view = VIEWS[name] || VIEWS.overview;
  const key = VIEWS[name] ? name : 'overview';
  for (const a of $('nav').querySelectorAll('a')) {
    if (a.getAttribute('href') === `#/${key}`) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
  stopView();
  // A result belongs to the view it happened in.
  $('status').textContent = '';
  const seq = ++renderSeq;
  const root = $('view');
  document.title = `${view.title} · MUTT console`;
  const heading = h('h1', { tabindex: '-1' }, view.title);
  const body = h('div.view-body');
  root.replaceChildren(heading, body);
  if (view.scope && !can(view.scope)) {
    body.append(h('p.notice', null, `This view needs the ${view.scope} scope; ${user.name} does not have it.`));
    heading.focus();
    return;
  }
  // Focus goes to the view's heading so that keyboard and screen-reader users land on
  // the new content.
  heading.focus();
  try {
    const mod = await view.load();
    if (seq !== renderSeq) return;
    const ctx = { user, can, announce, api, isCurrent: () => seq === renderSeq };
    const stop = await mod.render(body, ctx);
    if (seq !== renderSeq) {
      if (typeof stop === 'function') stop();
      return;
    }
    cleanup = stop;
  } catch (e) {
    if (seq !== renderSeq) return;
    body.append(h('p.error', { role: 'alert' }, errorText(e)));
  }
}

function start() {
  $('sign-in-form').addEventListener('submit', async (e) => {
    e.preventDefault();
    const key = $('api-key').value.trim();
    const err = $('sign-in-error');
    if (!key) {
      err.textContent = 'Enter an API key.';
      err.hidden = false;
      return;
    }
    try {
      await signIn(key);
    } catch (ex) {
      clearKey();
      err.textContent =
        ex instanceof ApiError && ex.status === 401 ? `Sign-in failed: ${ex.message}` : `Sign-in failed: ${errorText(ex)}`;
      err.hidden = false;
      $('api-key').focus();
    }
  });
  $('sign-out').addEventListener('click', () => {
    clearKey();
    showSignIn('Signed out.');
  });
  window.addEventListener('mutt:unauthorized', (e) => {
    clearKey();
    showSignIn(`Your key was refused: ${e.detail}. Sign in again.`);
  });
  window.addEventListener('hashchange', route);
  // Following the link of the view already shown reloads it (no hashchange fires).
  $('nav').addEventListener('click', (e) => {
    const a = e.target.closest('a');
    if (a && a.getAttribute('href') === location.hash) route();
  });
  const key = getKey();
  if (key) {
    signIn(key).catch((ex) => {
      clearKey();
      showSignIn(`Sign in again: ${errorText(ex)}`);
    });
  } else {
    showSignIn();
  }
}

start();
