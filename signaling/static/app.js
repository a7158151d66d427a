// webcam-peer call page: protocol v1 over a WebSocket, one RTCPeerConnection per call.
// Plain ES modules, no build step; this one only wires the parts. User-provided text
// only ever goes into textContent.

import { CallData } from './calldata.js';
import { CallConsent } from './consent.js';
import { Controls } from './controls.js';
import { Conversation } from './conversation.js';
import { DevicePicker } from './devices.js';
import { LocalMedia } from './localmedia.js';
import { Login } from './login.js';
import { Page } from './page.js';
import { SignalingSession, describeError } from './signaling.js';
import { PageView, RemoteView, byId } from './view.js';

const view = new PageView();
const notify = (text) => view.showNotice(text);
const talk = new CallData(
  { log: byId('chat-log'), form: byId('chat-form'), input: byId('chat-input'), send: byId('chat-send') },
  { list: byId('transfers'), input: byId('file-input'), send: byId('file-send') },
  notify,
);
const consent = new CallConsent({
  box: byId('incoming'),
  name: byId('incoming-name'),
  accept: byId('accept-call'),
  decline: byId('decline-call'),
});
const controls = new Controls(
  { mute: byId('mute-mic'), camera: byId('camera-toggle'), share: byId('share-screen'), remoteState: byId('remote-media') },
  () => media.stream ?? Promise.resolve(null),
  () => (conversation.call ? conversation.call.pc : null),
  notify,
  (kind) => devices.openTrack(kind),
);
const devices = new DevicePicker(
  {
    camera: byId('camera-select'),
    microphone: byId('mic-select'),
    speaker: byId('speaker-select'),
    speakerField: byId('speaker-field'),
    note: byId('devices-note'),
  },
  byId('remote'),
  () => byId('local').srcObject,
  controls,
  notify,
);
talk.chatListeners.push((channel) => controls.attachChannel(channel));
const media = new LocalMedia(byId('local'), devices, controls, notify);
const remote = new RemoteView({ video: byId('remote'), label: byId('remote-label'), unmute: byId('unmute') });

const page = new Page(view, () => ({ named: login.username !== null, loggingIn: login.pending !== null }));
const during = () => (conversation.call ? `; the call with ${conversation.call.partner} goes on` : '');
const session = new SignalingSession({
  opened: () => login.opened(),
  message: (message) =>
    route(message).catch((err) => {
      console.error('handling', message.type, err);
      view.showError(`Something went wrong: ${describeError(err)}`);
    }),
  closed: () => {
    login.closed();
    consent.withdraw();
    page.fire('server-lost');
  },
  waiting: (seconds) =>
    view.setStatus(
      `Disconnected from the server${during()}; reconnecting ${seconds === null ? 'now' : `in ${seconds} s`}…`,
    ),
  failed: (text) => view.showError(text),
});
const login = new Login(view, page, session, {
  loggedIn: (name, again) => {
    conversation.loggedIn();
    page.fire('logged-in');
    if (conversation.call) {
      view.setStatus(`Reconnected to the server; the call with ${conversation.call.partner} goes on.`);
      return;
    }
    view.clearError();
    view.setStatus(`${again ? 'Reconnected to the server as' : 'Logged in as'} ${name}. Pick someone to call.`);
  },
});
const conversation = new Conversation({ view, page, session, login, media, remote, talk, controls, consent, callee: view.callee });

// Every message type parseServerMessage lets through, to the part it concerns.
const routes = {
  login: (m) => login.reply(m),
  users: (m) => view.renderUsers(m.users, login.username),
  offer: (m) => conversation.offer(m),
  answer: (m) => conversation.answer(m),
  candidate: (m) => conversation.candidate(m),
  close: (m) => conversation.close(m),
  error: (m) => login.refused(m) || conversation.serverError(m),
};

async function route(message) {
  return routes[message.type](message);
}

async function loadConfig() {
  try {
    const response = await fetch('/config', { cache: 'no-store' });
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
    login.configure(await response.json());
  } catch (err) {
    console.warn('GET /config failed; no ICE servers', err);
    notify('Could not load the server configuration; calls may only work on this network.');
    login.configure({});
  }
}

view.loginForm.addEventListener('submit', (event) => {
  event.preventDefault();
  login.submit();
});
view.callForm.addEventListener('submit', (event) => {
  event.preventDefault();
  conversation.dial();
});
view.hangup.addEventListener('click', () => {
  view.clearError();
  conversation.hangUp();
});
window.addEventListener('pagehide', () => conversation.hangUp());

window.webcamPeer = Object.freeze({
  get pc() {
    return conversation.call ? conversation.call.pc : null;
  },
  get state() {
    return page.state;
  },
  get username() {
    return login.username;
  },
  get partner() {
    return conversation.call ? conversation.call.partner : null;
  },
  get connected() {
    return session.open;
  },
  // The call's chat channel while open, for tests that play a misbehaving partner.
  get chatChannel() {
    return talk.chat.channel;
  },
});

page.refresh();
view.setStatus('Connecting…');
await loadConfig();
session.connect();
