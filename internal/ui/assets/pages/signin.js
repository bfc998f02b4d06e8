// Sign-in page: account name and key (docs/dashboard.md).
import { route, el, signIn, navigate, currentAccount } from '../app.js';

route('/signin', (root, params, query) => {
  const acct = el('input', { id: 'signin-account', name: 'account', autocomplete: 'username', required: true, spellcheck: 'false', autocapitalize: 'none', value: currentAccount() || '' });
  const key = el('input', { id: 'signin-key', name: 'key', type: 'password', autocomplete: 'current-password', required: true });
  const err = el('p', { class: 'error', role: 'alert', id: 'signin-error', hidden: true });
  const submit = el('button', { type: 'submit' }, 'Sign in');
  const form = el('form', { class: 'signin card', 'aria-describedby': 'signin-error' },
    el('label', { class: 'field', for: 'signin-account' }, el('span', { class: 'field-label' }, 'Account')),
    acct,
    el('label', { class: 'field', for: 'signin-key' }, el('span', { class: 'field-label' }, 'Key')),
    key,
    el('p', { class: 'hint' }, 'The account name and its primary or secondary key, as in credentials.json of the server\'s data directory.'),
    err,
    submit);
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    err.hidden = true;
    submit.disabled = true;
    try {
      await signIn(acct.value.trim(), key.value.trim());
      const next = query.get('next');
      navigate(next && next.startsWith('/') && !next.startsWith('/signin') ? next : '/overview');
    } catch (e) {
      err.textContent = e.status === 401 ? 'Wrong account name or key.' : (e.message || String(e));
      err.hidden = false;
      key.focus();
    } finally {
      submit.disabled = false;
    }
  });
  root.append(el('h1', null, 'Sign in to Kiln'), form);
  (acct.value ? key : acct).focus();
});
