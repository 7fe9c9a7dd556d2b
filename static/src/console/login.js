// The login screen: username and password -> POST /api/login.

import * as api from './api.js';

export class LoginScreen {
  // els: {root, form, username, password, submit, error}; onLoggedIn(me)
  constructor(els, onLoggedIn) {
    this.els = els;
    this.onLoggedIn = onLoggedIn;
    els.form.addEventListener('submit', (e) => {
      e.preventDefault();
      this.submit();
    });
  }

  show(message) {
    const { root, password, username } = this.els;
    root.hidden = false;
    password.value = '';
    this.error(message || null);
    (username.value ? password : username).focus();
  }

  hide() {
    this.els.root.hidden = true;
  }

  async submit() {
    const { username, password, submit } = this.els;
    const name = username.value.trim();
    if (!name || !password.value) {
      this.error('Enter your username and password.');
      (name ? password : username).focus();
      return;
    }
    this.error(null);
    submit.disabled = true;
    submit.textContent = 'Signing in…';
    try {
      const me = await api.login(name, password.value);
      password.value = '';
      this.onLoggedIn(me);
    } catch (e) {
      this.error(sentence(e.message) || 'Could not sign in.');
      password.select();
      password.focus();
    } finally {
      submit.disabled = false;
      submit.textContent = 'Sign in';
    }
  }

  error(text) {
    const { error, username, password } = this.els;
    error.hidden = !text;
    error.textContent = text || '';
    for (const input of [username, password]) {
      if (text) input.setAttribute('aria-invalid', 'true');
      else input.removeAttribute('aria-invalid');
    }
  }
}

// "wrong username or password" -> "Wrong username or password."
function sentence(text) {
  const t = String(text || '').trim();
  if (!t) return '';
  return t[0].toUpperCase() + t.slice(1) + (/[.!?]$/.test(t) ? '' : '.');
}
