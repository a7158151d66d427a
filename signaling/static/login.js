// Logging in, and staying logged in: the name is sent again (with the resume ticket)
// whenever the socket comes back, a refusal of our own name is retried while our old
// session lingers on the server, and the list of users is polled while logged in.

import { shown } from './consent.js';

const LIST_INTERVAL_MS = 3000;
// Our old connection is dropped from the server within about 30 s (the heartbeat's reach).
const MAX_RELOGIN_TRIES = 30;
const RELOGIN_AFTER_MS = 1000;

export class Login {
  // events: {loggedIn(name, again)}
  constructor(view, page, session, events) {
    this.view = view;
    this.page = page;
    this.session = session;
    this.events = events;
    this.username = null; // the name we are logged in under (kept to log in again)
    this.pending = null; // the name a login request is out for
    this.ticket = null; // the latest login's resume ticket: our name back after a server restart
    this.tokenRequired = false;
    this.iceServers = [];
    this.reloginTries = 0; // refusals of our own name since the reconnect
    this.listTimer = null;
  }

  configure(config) {
    if (Array.isArray(config.iceServers)) this.iceServers = config.iceServers;
    this.tokenRequired = config.tokenRequired === true;
    this.view.tokenField.hidden = !this.tokenRequired;
  }

  send(name) {
    const message = { type: 'login', username: name };
    const token = this.view.token.value;
    if (token) message.token = token;
    if (this.ticket !== null && name === this.username) message.ticket = this.ticket;
    this.session.send(message);
  }

  /** The person pressed Log in. */
  submit() {
    const name = this.view.username.value.trim();
    this.view.clearError();
    if (!name) return this.view.showError('Enter a username first.');
    if (this.tokenRequired && !this.view.token.value) {
      return this.view.showError('This server needs an access token.');
    }
    this.pending = name;
    this.page.refresh();
    this.view.setStatus(`Logging in as ${name}…`);
    if (this.session.open) this.send(name);
    else this.session.connect(); // opened() sends the login
  }

  /** The socket is open: log in again under our name, if we have one. */
  opened() {
    const name = this.pending ?? this.username;
    if (name !== null) {
      this.pending = name;
      this.view.setStatus(`Connected; logging in as ${name}…`);
      this.send(name);
    } else {
      this.view.setStatus('Connected. Choose a username and log in.');
    }
    this.page.refresh();
  }

  closed() {
    this.stopPolling();
  }

  reply(message) {
    const name = this.pending;
    this.pending = null;
    if (name === null) return;
    if (message.success) return this.succeeded(name, message);
    if (this.username === name && message.reason === 'username-taken' && this.reloginTries < MAX_RELOGIN_TRIES) {
      return this.retry(name);
    }
    this.failed(name, message.message || message.reason || 'refused');
  }

  succeeded(name, { iceServers, ticket }) {
    // The server's STUN list plus TURN with credentials minted for this login, which
    // expire; a re-login after a reconnect brings fresh ones.
    if (iceServers !== null) this.iceServers = iceServers;
    this.ticket = ticket;
    const again = this.username === name;
    if (this.reloginTries > 0) {
      this.view.clearError();
      this.view.showNotice(
        `The name ${name} was taken on the server for a while (possible impersonation); it is yours again.`,
      );
    }
    this.reloginTries = 0;
    this.username = name;
    this.view.me.textContent = name;
    this.startPolling();
    this.events.loggedIn(name, again);
  }

  // Our old connection may not be gone from the server yet: try again shortly. But
  // someone else may have taken the name while we were away, and the person is told so.
  retry(name) {
    if (this.reloginTries === 0) {
      this.view.showError(
        `The name “${shown(name)}” is taken on the server: someone else may be logged in as ` +
          'you (possible impersonation). Still trying to log in again…',
      );
    }
    this.reloginTries += 1;
    this.view.setStatus(`The name ${name} is taken on the server; logging in again soon…`);
    setTimeout(() => {
      if (this.pending !== null || this.username !== name) return;
      this.pending = name;
      this.send(name);
    }, RELOGIN_AFTER_MS);
  }

  /** An error from the server that answers our login; true when it was one. */
  refused({ text }) {
    // Nothing but the login is sent before logging in, so this is its answer.
    if (this.pending === null || this.page.state !== 'logged-out') return false;
    const name = this.pending;
    this.pending = null;
    this.failed(name, text);
    return true;
  }

  failed(name, why) {
    const again = this.username !== null;
    this.username = null;
    this.view.me.textContent = '';
    this.page.fire('login-failed');
    this.view.showError(`Could not log in${again ? ' again' : ''} as “${name}”: ${why}`);
    this.view.setStatus('Not logged in.');
    this.view.username.focus();
  }

  startPolling() {
    this.stopPolling();
    this.session.send({ type: 'list' });
    this.listTimer = setInterval(() => this.session.send({ type: 'list' }), LIST_INTERVAL_MS);
  }

  stopPolling() {
    if (this.listTimer !== null) clearInterval(this.listTimer);
    this.listTimer = null;
  }
}
