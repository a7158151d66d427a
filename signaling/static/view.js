// What the page shows outside the call's media: status, error and notice lines, the
// login and call forms by the page's state, and the list of users online. Every piece
// of remote text goes into textContent.

import { pageControls } from './callstate.js';

export const byId = (id) => document.getElementById(id);

export class PageView {
  constructor() {
    for (const [key, id] of Object.entries({
      status: 'status',
      error: 'error',
      notice: 'notice',
      loginForm: 'login-form',
      username: 'username',
      tokenField: 'token-field',
      token: 'token',
      login: 'login',
      session: 'session',
      me: 'me',
      callForm: 'call-form',
      callee: 'callee',
      call: 'call',
      hangup: 'hangup',
      users: 'users',
      usersEmpty: 'users-empty',
    })) {
      this[key] = byId(id);
    }
    this.lastUsers = '';
  }

  setStatus(text) {
    this.status.textContent = text;
  }

  showError(text) {
    this.error.textContent = text;
  }

  clearError() {
    this.error.textContent = '';
  }

  showNotice(text) {
    this.notice.textContent = text;
  }

  showState(state, { named, loggingIn }) {
    document.body.dataset.state = state;
    const controls = pageControls(state, { named, loggingIn });
    this.loginForm.hidden = !controls.showLogin;
    this.session.hidden = controls.showLogin;
    this.username.disabled = !controls.showLogin;
    this.login.disabled = controls.loginDisabled;
    this.call.disabled = controls.callDisabled;
    this.callee.disabled = controls.calleeDisabled;
    this.hangup.disabled = controls.hangupDisabled;
  }

  renderUsers(users, me) {
    const others = users.filter((u) => u !== me).sort((a, b) => a.localeCompare(b));
    const key = JSON.stringify(others);
    if (key === this.lastUsers) return; // unchanged: keep the elements (and any hover/focus)
    this.lastUsers = key;
    const items = others.map((name) => {
      const li = document.createElement('li');
      const button = document.createElement('button');
      button.type = 'button';
      button.className = 'user';
      button.textContent = name;
      button.title = `Call ${name}`;
      button.addEventListener('click', () => {
        this.callee.value = name;
        this.callee.focus();
      });
      li.append(button);
      return li;
    });
    this.users.replaceChildren(...items);
    this.usersEmpty.hidden = others.length > 0;
  }
}

// The partner's video and sound, muted with an Unmute button when autoplay is refused.
export class RemoteView {
  constructor({ video, label, unmute }) {
    this.video = video;
    this.label = label;
    this.unmute = unmute;
    unmute.addEventListener('click', () => {
      video.muted = false;
      unmute.hidden = true;
      this.play();
    });
  }

  show(partner) {
    this.label.textContent = partner;
  }

  addTrack(stream, track) {
    stream.addTrack(track);
    if (this.video.srcObject !== stream) this.video.srcObject = stream;
    this.play();
  }

  play() {
    const promise = this.video.play();
    if (!promise) return;
    promise.catch((err) => {
      if (err && err.name === 'NotAllowedError') {
        // Autoplay with sound refused: play muted and offer a button to unmute.
        this.video.muted = true;
        this.unmute.hidden = false;
        this.video.play().catch((e) => console.warn('remote play', e));
      } else if (err && err.name !== 'AbortError') {
        console.warn('remote play', err);
      }
    });
  }

  clear() {
    this.video.pause();
    this.video.srcObject = null;
    this.video.muted = false;
    this.unmute.hidden = true;
    this.label.textContent = 'Nobody yet';
  }
}
