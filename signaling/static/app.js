// webcam-peer call page: protocol v1 over a WebSocket, one RTCPeerConnection per call.
// Plain ES module, no build step. User-provided text only ever goes into textContent.
// Chat and file transfer live in calldata.js and the modules it imports.

import { CallData } from './calldata.js';
import { CallConsent, shown } from './consent.js';
import { Controls } from './controls.js';
import { DevicePicker } from './devices.js';

const $ = (id) => document.getElementById(id);

const ui = {
  status: $('status'),
  error: $('error'),
  notice: $('notice'),
  loginForm: $('login-form'),
  username: $('username'),
  tokenField: $('token-field'),
  token: $('token'),
  login: $('login'),
  session: $('session'),
  me: $('me'),
  callForm: $('call-form'),
  callee: $('callee'),
  call: $('call'),
  hangup: $('hangup'),
  users: $('users'),
  usersEmpty: $('users-empty'),
  local: $('local'),
  remote: $('remote'),
  remoteLabel: $('remote-label'),
  unmute: $('unmute'),
};

const talk = new CallData(
  { log: $('chat-log'), form: $('chat-form'), input: $('chat-input'), send: $('chat-send') },
  { list: $('transfers'), input: $('file-input'), send: $('file-send') },
  showNotice,
);
const consent = new CallConsent({
  box: $('incoming'),
  name: $('incoming-name'),
  accept: $('accept-call'),
  decline: $('decline-call'),
});

const controls = new Controls(
  { mute: $('mute-mic'), camera: $('camera-toggle'), share: $('share-screen'), remoteState: $('remote-media') },
  () => app.media ?? Promise.resolve(null),
  () => (app.call ? app.call.pc : null),
  showNotice,
  (kind) => devices.openTrack(kind),
);
const devices = new DevicePicker(
  {
    camera: $('camera-select'),
    microphone: $('mic-select'),
    speaker: $('speaker-select'),
    speakerField: $('speaker-field'),
    note: $('devices-note'),
  },
  $('remote'),
  () => $('local').srcObject,
  controls,
  showNotice,
);
talk.chatListeners.push((channel) => controls.attachChannel(channel));

const LIST_INTERVAL_MS = 3000;
const RECONNECT_MIN_MS = 500;
const RECONNECT_MAX_MS = 10000;
// A call whose media connection fails is negotiated afresh once (docs/reliability.md):
// how long the new connection (or the partner's fresh offer) may take.
const RECOVERY_TIMEOUT_MS = 20000;
// Chromium reports a dead path "disconnected" within seconds but "failed" only once
// consent has been missing for 30 s; the Python peer gives up after about 7 s, and the
// side that dialled must re-offer while the other still waits for it.
const DISCONNECTED_IS_FAILED_MS = 4000;
// A fresh offer (new ICE credentials: "my side failed, start over") while our own
// connection still works is held this long: an honest partner closed its old
// connection first, so ours turns "disconnected" within seconds and the offer is taken
// then; one that finds our connection still up is refused (peer/recovery.py says why).
const FRESH_OFFER_HOLD_MS = 10000;
const CONNECTION_HEALTHY = 'connection-healthy'; // the reason of that refusal's close

const app = {
  state: 'logged-out', // 'logged-out' | 'idle' | 'calling' | 'in-call'
  username: null, // the name we are logged in under (kept to log in again after a reconnect)
  pendingLogin: null, // the name a login request is out for
  ws: null,
  reconnectDelay: RECONNECT_MIN_MS,
  reconnectTimer: null,
  listTimer: null,
  iceServers: [],
  ticket: null, // the latest login's resume ticket: our name back after a server restart
  tokenRequired: false,
  media: null, // Promise<MediaStream | null>, started once at the first login
  call: null, // see newCall()
  lastUsers: '',
  unsentCloses: [], // hang-ups made while the server was away: sent after logging in again
  reloginTries: 0, // refusals of our own name since the reconnect (our old session lingers)
};

// ---- small UI helpers -------------------------------------------------------------------

function setStatus(text) {
  ui.status.textContent = text;
}

function showError(text) {
  ui.error.textContent = text;
}

function clearError() {
  ui.error.textContent = '';
}

function showNotice(text) {
  ui.notice.textContent = text;
}

function setState(state) {
  app.state = state;
  document.body.dataset.state = state;
  const loggedIn = state !== 'logged-out';
  const busy = state === 'calling' || state === 'in-call';
  // While reconnecting under a name we keep the session view instead of the login form.
  const showLogin = !loggedIn && app.username === null;
  ui.loginForm.hidden = !showLogin;
  ui.session.hidden = showLogin;
  ui.username.disabled = !showLogin;
  ui.login.disabled = !showLogin || app.pendingLogin !== null;
  ui.call.disabled = state !== 'idle';
  ui.callee.disabled = busy;
  ui.hangup.disabled = !busy;
}

function describeError(err) {
  if (err && typeof err === 'object' && 'message' in err && err.message) return String(err.message);
  return String(err);
}

// ---- signaling socket ---------------------------------------------------------------------

function socketUrl() {
  const scheme = window.location.protocol === 'https:' ? 'wss:' : 'ws:';
  return `${scheme}//${window.location.host}/ws`;
}

function send(message) {
  const ws = app.ws;
  if (!ws || ws.readyState !== WebSocket.OPEN) {
    console.warn('not connected; dropped', message.type);
    return false;
  }
  ws.send(JSON.stringify(message));
  return true;
}

function connect() {
  if (app.reconnectTimer !== null) {
    clearTimeout(app.reconnectTimer);
    app.reconnectTimer = null;
  }
  if (app.ws && app.ws.readyState <= WebSocket.OPEN) return;
  let ws;
  try {
    ws = new WebSocket(socketUrl());
  } catch (err) {
    showError(`Cannot open the signaling connection: ${describeError(err)}`);
    scheduleReconnect();
    return;
  }
  app.ws = ws;
  ws.addEventListener('open', () => {
    if (app.ws !== ws) return;
    app.reconnectDelay = RECONNECT_MIN_MS;
    const name = app.pendingLogin ?? app.username;
    if (name !== null) {
      app.pendingLogin = name;
      setStatus(`Connected; logging in as ${name}…`);
      sendLogin(name);
    } else {
      setStatus('Connected. Choose a username and log in.');
    }
    setState(app.state);
  });
  ws.addEventListener('message', (event) => {
    if (app.ws !== ws) return;
    let data;
    try {
      data = JSON.parse(event.data);
    } catch {
      console.warn('ignoring a frame that is not JSON', event.data);
      return;
    }
    if (data === null || typeof data !== 'object') return;
    handleMessage(data).catch((err) => {
      console.error('handling', data.type, err);
      showError(`Something went wrong: ${describeError(err)}`);
    });
  });
  ws.addEventListener('close', () => {
    if (app.ws !== ws) return;
    app.ws = null;
    stopUserPolling();
    consent.withdraw();
    // A call goes on without the server (media flows peer to peer); the page logs in
    // again under the same name when the server is back.
    if (!app.call && app.state !== 'logged-out') setState('logged-out');
    scheduleReconnect();
  });
}

function scheduleReconnect() {
  if (app.reconnectTimer !== null) return;
  // Doubling up to the cap, each delay scattered by ±50 % so that every page of a
  // restarted server does not come back in the same instant.
  const delay = Math.round(app.reconnectDelay * (0.5 + Math.random()));
  app.reconnectDelay = Math.min(app.reconnectDelay * 2, RECONNECT_MAX_MS);
  const seconds = (delay / 1000).toFixed(1);
  const during = () => (app.call ? `; the call with ${app.call.partner} goes on` : '');
  setStatus(`Disconnected from the server${during()}; reconnecting in ${seconds} s…`);
  app.reconnectTimer = setTimeout(() => {
    app.reconnectTimer = null;
    setStatus(`Disconnected from the server${during()}; reconnecting now…`);
    connect();
  }, delay);
}

async function handleMessage(data) {
  switch (data.type) {
    case 'login':
      return handleLoginReply(data);
    case 'users':
      return renderUsers(data.users);
    case 'offer':
      return handleOffer(data);
    case 'answer':
      return handleAnswer(data);
    case 'candidate':
      return handleCandidate(data);
    case 'close':
      return handleClose(data);
    case 'error':
      return handleServerError(data);
    default:
      console.debug('ignoring message of type', data.type);
  }
}

// ---- login -------------------------------------------------------------------------------

function sendLogin(name) {
  const message = { type: 'login', username: name };
  const token = ui.token.value;
  if (token) message.token = token;
  if (app.ticket !== null && name === app.username) message.ticket = app.ticket;
  send(message);
}

function login() {
  const name = ui.username.value.trim();
  clearError();
  if (!name) {
    showError('Enter a username first.');
    return;
  }
  if (app.tokenRequired && !ui.token.value) {
    showError('This server needs an access token.');
    return;
  }
  app.pendingLogin = name;
  setState(app.state);
  setStatus(`Logging in as ${name}…`);
  if (app.ws && app.ws.readyState === WebSocket.OPEN) {
    sendLogin(name);
  } else {
    connect(); // the open handler sends the login
  }
}

function handleLoginReply(data) {
  const name = app.pendingLogin;
  app.pendingLogin = null;
  if (name === null) return;
  if (data.success === true) {
    // The server's STUN list plus TURN with credentials minted for this login, which
    // expire; a re-login after a reconnect brings fresh ones.
    if (Array.isArray(data.iceServers)) app.iceServers = data.iceServers;
    app.ticket = typeof data.ticket === 'string' ? data.ticket : null;
    const again = app.username === name;
    if (app.reloginTries > 0) {
      clearError();
      showNotice(
        `The name ${name} was taken on the server for a while (possible impersonation); ` +
          'it is yours again.',
      );
    }
    app.reloginTries = 0;
    app.username = name;
    ui.me.textContent = name;
    startUserPolling();
    for (const partner of app.unsentCloses.splice(0)) send({ type: 'close', otherUsername: partner });
    if (app.call) {
      setState(app.state);
      setStatus(`Reconnected to the server; the call with ${app.call.partner} goes on.`);
      return;
    }
    clearError();
    setState('idle');
    setStatus(
      again
        ? `Reconnected to the server as ${name}. Pick someone to call.`
        : `Logged in as ${name}. Pick someone to call.`,
    );
    return;
  }
  if (app.username === name && data.reason === 'username-taken' && app.reloginTries < 30) {
    // Our old connection may not be gone from the server yet (it is dropped within
    // about 30 s, the heartbeat's reach): try again shortly. But someone else may have
    // taken the name while we were away, and the person is told so at once.
    if (app.reloginTries === 0) {
      showError(
        `The name “${shown(name)}” is taken on the server: someone else may be logged in as ` +
          'you (possible impersonation). Still trying to log in again…',
      );
    }
    app.reloginTries += 1;
    setStatus(`The name ${name} is taken on the server; logging in again soon…`);
    setTimeout(() => {
      if (app.pendingLogin !== null || app.username !== name) return;
      app.pendingLogin = name;
      sendLogin(name);
    }, 1000);
    return;
  }
  loginFailed(name, data.message || data.reason || 'refused');
}

function loginFailed(name, why) {
  const again = app.username !== null;
  app.username = null;
  ui.me.textContent = '';
  setState('logged-out');
  showError(`Could not log in${again ? ' again' : ''} as “${name}”: ${why}`);
  setStatus('Not logged in.');
  ui.username.focus();
}

// ---- users online -----------------------------------------------------------------------

function startUserPolling() {
  stopUserPolling();
  send({ type: 'list' });
  app.listTimer = setInterval(() => send({ type: 'list' }), LIST_INTERVAL_MS);
}

function stopUserPolling() {
  if (app.listTimer !== null) clearInterval(app.listTimer);
  app.listTimer = null;
}

function renderUsers(users) {
  if (!Array.isArray(users)) return;
  const others = users
    .filter((u) => typeof u === 'string' && u !== app.username)
    .sort((a, b) => a.localeCompare(b));
  const key = JSON.stringify(others);
  if (key === app.lastUsers) return; // unchanged: keep the elements (and any hover/focus)
  app.lastUsers = key;
  const items = others.map((name) => {
    const li = document.createElement('li');
    const button = document.createElement('button');
    button.type = 'button';
    button.className = 'user';
    button.textContent = name;
    button.title = `Call ${name}`;
    button.addEventListener('click', () => {
      ui.callee.value = name;
      ui.callee.focus();
    });
    li.append(button);
    return li;
  });
  ui.users.replaceChildren(...items);
  ui.usersEmpty.hidden = others.length > 0;
}

// ---- media --------------------------------------------------------------------------------

function startMedia() {
  if (app.media) return app.media;
  app.media = (async () => {
    if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
      showNotice(
        'This page cannot use the camera here (it needs HTTPS or localhost). You can still receive calls.',
      );
      return null;
    }
    const attempts = [
      [['video', 'audio'], ''],
      [['video'], 'No microphone available: sending video only.'],
      [['audio'], 'No camera available: sending audio only.'],
    ];
    let firstError = null;
    for (const [kinds, note] of attempts) {
      try {
        const stream = await devices.getUserMedia(kinds);
        ui.local.muted = true;
        ui.local.srcObject = stream;
        if (note) showNotice(note);
        controls.mediaReady();
        devices.refresh(); // labels are readable now
        return stream;
      } catch (err) {
        firstError ??= err;
        console.warn('getUserMedia', kinds, err);
      }
    }
    showNotice(
      `No camera or microphone (${describeError(firstError)}). You can still see and hear others.`,
    );
    return null;
  })();
  return app.media;
}

// ---- calls ---------------------------------------------------------------------------------

function newCall(partner, caller) {
  const pc = new RTCPeerConnection({ iceServers: app.iceServers });
  const call = {
    partner,
    pc,
    remoteSet: false, // remote description applied: candidates can go straight in
    pendingRemote: [], // candidates that came before the remote description
    descriptionSent: false, // our offer/answer is out: candidates may follow it
    pendingLocal: [], // candidates gathered before that
    sentEnd: false,
    remoteStream: new MediaStream(),
    dialled: false, // we sent the first offer: the side that re-offers after a failure
    recovering: false, // this connection re-establishes a failed one (no further attempt)
    awaitingOffer: false, // recovering, and the partner's fresh offer has not come yet
    recoveryTimer: null,
    mediaAdded: false, // our tracks are on the connection (a later offer renegotiates)
    everConnected: false,
    disconnectedTimer: null,
    heldOffer: null, // a fresh offer judged by this connection's health, see holdFreshOffer
  };
  pc.addEventListener('icecandidate', (event) => {
    if (app.call !== call) return;
    const cand = event.candidate;
    let payload = null;
    if (cand && cand.candidate) {
      payload = cand.toJSON();
    } else {
      if (call.sentEnd) return;
      call.sentEnd = true;
    }
    if (call.descriptionSent) sendCandidate(call, payload);
    else call.pendingLocal.push(payload);
  });
  pc.addEventListener('track', (event) => {
    if (app.call !== call) return;
    call.remoteStream.addTrack(event.track);
    if (ui.remote.srcObject !== call.remoteStream) ui.remote.srcObject = call.remoteStream;
    playRemote();
  });
  pc.addEventListener('connectionstatechange', () => {
    if (app.call !== call) return;
    const state = pc.connectionState;
    if (call.disconnectedTimer !== null && state !== 'disconnected') {
      clearTimeout(call.disconnectedTimer);
      call.disconnectedTimer = null;
    }
    if (state === 'connected') {
      call.everConnected = true;
      if (call.recovering && call.recoveryTimer !== null) {
        clearTimeout(call.recoveryTimer);
        call.recoveryTimer = null;
        clearError();
        setStatus(`Call with ${partner} re-established.`);
      } else {
        setStatus(`In a call with ${partner}.`);
      }
    } else if (state === 'disconnected') {
      setStatus(`Connection to ${partner} interrupted; waiting for it to recover…`);
      call.disconnectedTimer = setTimeout(() => {
        call.disconnectedTimer = null;
        if (app.call === call && pc.connectionState === 'disconnected') mediaFailed(call);
      }, DISCONNECTED_IS_FAILED_MS);
    } else if (state === 'failed') {
      mediaFailed(call);
    }
    if (state === 'disconnected' || state === 'failed') takeHeldOffer(call);
  });
  app.call = call;
  ui.remoteLabel.textContent = partner;
  // The caller's chat channel must exist before createOffer.
  talk.start(pc, partner, { caller });
  return call;
}

// ---- a failed media connection: re-established once (docs/reliability.md) --------------

function mediaFailed(call) {
  const partner = call.partner;
  const signalingUp = app.ws !== null && app.ws.readyState === WebSocket.OPEN;
  if (call.recovering || !call.everConnected || !signalingUp) {
    const again = call.recovering && call.everConnected;
    hangUp(`Call with ${partner} failed.`);
    showError(
      again
        ? `The media connection with ${partner} failed again; call ended.`
        : call.recovering
          ? `Could not re-establish the call with ${partner}; call ended.`
          : `The connection to ${partner} failed.`,
    );
    return;
  }
  showError(`The media connection with ${partner} failed; reconnecting the call (1 attempt)…`);
  setStatus(`Reconnecting the call with ${partner}…`);
  const next = replaceCall(call);
  if (call.dialled) {
    next.dialled = true;
    offerTo(next).catch((err) => giveUp(next, describeError(err)));
  } else {
    next.awaitingOffer = true; // only the side that dialled re-offers: no glare
  }
}

// A new RTCPeerConnection (new ICE credentials) in place of ``call``, which is closed
// without telling anybody.
function replaceCall(call) {
  if (call.recoveryTimer !== null) clearTimeout(call.recoveryTimer);
  if (call.disconnectedTimer !== null) clearTimeout(call.disconnectedTimer);
  try {
    call.pc.close();
  } catch (err) {
    console.warn('closing the failed peer connection', err);
  }
  // The side that re-offers makes the new connection's chat channel before its offer.
  const next = newCall(call.partner, call.dialled);
  next.recovering = true;
  next.recoveryTimer = setTimeout(() => giveUp(next, 'timed out'), RECOVERY_TIMEOUT_MS);
  return next;
}

function giveUp(call, why) {
  if (app.call !== call) return;
  const partner = call.partner;
  hangUp(`Call with ${partner} failed.`);
  showError(`Could not re-establish the call with ${partner} (${why}); call ended.`);
}

// An offer from the current partner with other ICE credentials than the connection we
// have starts over (the partner is re-establishing a failed call), where one with the
// same credentials renegotiates this connection.
function isFreshNegotiation(call, sdp) {
  const current = call.pc.remoteDescription;
  if (!current) return false;
  const ufrag = (text) => (/^a=ice-ufrag:(\S+)/m.exec(text) || [])[1] ?? null;
  const before = ufrag(current.sdp);
  const offered = ufrag(sdp);
  return before !== null && offered !== null && before !== offered;
}

function mediaFailing(call) {
  const bad = ['disconnected', 'failed', 'closed'];
  return bad.includes(call.pc.connectionState) || bad.includes(call.pc.iceConnectionState);
}

// A fresh offer while our connection works: kept (with its candidates) until the
// connection falters, then taken; refused with a close saying why if it never does.
function holdFreshOffer(call, data) {
  if (call.heldOffer !== null) return; // one at a time
  const ufrag = (/^a=ice-ufrag:(\S+)/m.exec(data.offer.sdp) || [])[1] ?? null;
  const timer = setTimeout(() => refuseHeldOffer(call), FRESH_OFFER_HOLD_MS);
  call.heldOffer = { data, ufrag, candidates: [], timer };
}

function takeHeldOffer(call) {
  const held = call.heldOffer;
  if (held === null) return;
  clearTimeout(held.timer);
  call.heldOffer = null;
  const current = app.call;
  // The side that dialled re-offers itself; a call that ended takes nothing.
  if (call.dialled || current === null || current.partner !== call.partner) return;
  handleOffer(held.data).catch((err) => console.warn('taking the fresh offer', err));
  for (const candidate of held.candidates) {
    handleCandidate(candidate).catch((err) => console.warn('its candidate', err));
  }
}

function refuseHeldOffer(call) {
  const held = call.heldOffer;
  if (held === null) return;
  call.heldOffer = null;
  if (app.call !== call) return;
  send({ type: 'close', otherUsername: call.partner, reason: CONNECTION_HEALTHY });
  showNotice(
    `Refused a new connection from ${shown(call.partner)}: this call's connection still ` +
      'works, so the call goes on.',
  );
}

function sendCandidate(call, candidate) {
  send({ type: 'candidate', candidate, otherUsername: call.partner });
}

function descriptionSent(call) {
  call.descriptionSent = true;
  for (const candidate of call.pendingLocal.splice(0)) sendCandidate(call, candidate);
}

async function addRemoteCandidate(call, candidate) {
  try {
    if (candidate === null) {
      await call.pc.addIceCandidate(); // end of candidates
    } else {
      await call.pc.addIceCandidate(candidate);
    }
  } catch (err) {
    // A bad or late candidate must not end the call; others may still work.
    console.warn('addIceCandidate failed', candidate, err);
  }
}

async function remoteDescriptionSet(call) {
  call.remoteSet = true;
  for (const candidate of call.pendingRemote.splice(0)) {
    if (app.call !== call) return;
    await addRemoteCandidate(call, candidate);
  }
}

function addLocalMedia(call, stream) {
  const pc = call.pc;
  call.mediaAdded = true;
  const kinds = new Set();
  if (stream) {
    for (const track of stream.getTracks()) {
      pc.addTrack(track, stream);
      kinds.add(track.kind);
    }
  }
  return kinds;
}

function playRemote() {
  const promise = ui.remote.play();
  if (!promise) return;
  promise.catch((err) => {
    if (err && err.name === 'NotAllowedError') {
      // Autoplay with sound refused: play muted and offer a button to unmute.
      ui.remote.muted = true;
      ui.unmute.hidden = false;
      ui.remote.play().catch((e) => console.warn('remote play', e));
    } else if (err && err.name !== 'AbortError') {
      console.warn('remote play', err);
    }
  });
}

async function startCall() {
  clearError();
  if (app.state !== 'idle') return;
  const target = ui.callee.value.trim();
  if (!target) {
    showError('Enter the username of the person to call.');
    return;
  }
  if (target === app.username) {
    showError('You cannot call yourself.');
    return;
  }
  const call = newCall(target, true);
  call.dialled = true;
  setState('calling');
  setStatus(`Calling ${target}…`);
  try {
    await offerTo(call);
  } catch (err) {
    if (app.call !== call) return;
    endCall();
    showError(`Could not call ${target}: ${describeError(err)}`);
    setStatus('Ready.');
  }
}

// Our media on the call's connection, then an offer to its partner.
async function offerTo(call) {
  const stream = await startMedia();
  if (app.call !== call) return;
  const kinds = addLocalMedia(call, stream);
  // Still receive what we cannot send.
  for (const kind of ['audio', 'video']) {
    if (!kinds.has(kind)) call.pc.addTransceiver(kind, { direction: 'recvonly' });
  }
  const offer = await call.pc.createOffer();
  if (app.call !== call) return;
  await call.pc.setLocalDescription(offer);
  if (app.call !== call) return;
  const sent = send({
    type: 'offer',
    offer: { type: 'offer', sdp: call.pc.localDescription.sdp },
    otherUsername: call.partner,
  });
  if (!sent) throw new Error('not connected to the server');
  descriptionSent(call);
}

async function handleOffer(data) {
  const from = data.username;
  const offer = data.offer;
  if (typeof from !== 'string' || !offer || typeof offer.sdp !== 'string') return;
  if (app.state === 'logged-out') return;
  let call = app.call;
  if (call && call.partner !== from) {
    // The server does not relay offers to a user in a call; if one comes anyway, say busy.
    console.warn('offer from', from, 'while in a call with', call.partner);
    return;
  }
  if (call && !call.awaitingOffer && isFreshNegotiation(call, offer.sdp)) {
    // The partner starts over on a new connection, which replaces ours only once ours
    // fails too: whoever sends offers in their name must not get the call.
    if (!mediaFailing(call)) {
      holdFreshOffer(call, data);
      return;
    }
    if (call.dialled) return; // the side that dialled re-offers itself
    showError(`The media connection with ${from} failed; reconnecting the call (1 attempt)…`);
    call = replaceCall(call);
  }
  const renegotiation = call !== null && call.mediaAdded;
  if (call) call.awaitingOffer = false;
  if (!call) {
    if (!(await askToAnswer(from))) return;
    clearError();
    call = newCall(from, false);
    call.pendingRemote.push(...consent.takeCandidates());
    setState('in-call');
    setStatus(`Answering ${shown(from)}…`);
  }
  try {
    // A glare (we were calling them too) rolls our offer back implicitly.
    await call.pc.setRemoteDescription({ type: 'offer', sdp: offer.sdp });
    if (app.call !== call) return;
    if (!renegotiation) talk.remoteDescription(offer.sdp);
    await remoteDescriptionSet(call);
    if (!renegotiation) {
      const stream = await startMedia();
      if (app.call !== call) return;
      addLocalMedia(call, stream);
    }
    const answer = await call.pc.createAnswer();
    if (app.call !== call) return;
    await call.pc.setLocalDescription(answer);
    if (app.call !== call) return;
    send({
      type: 'answer',
      answer: { type: 'answer', sdp: call.pc.localDescription.sdp },
      otherUsername: from,
    });
    descriptionSent(call);
    setState('in-call');
    if (call.pc.connectionState !== 'connected') setStatus(`In a call with ${from}; connecting…`);
  } catch (err) {
    if (app.call !== call) return;
    showError(`Could not answer ${from}: ${describeError(err)}`);
    hangUp(`Call with ${from} failed.`);
  }
}

// Accept or Decline before anything of ours (connection, camera, microphone) is made
// for a caller; true to answer.
async function askToAnswer(from) {
  if (consent.caller !== null) {
    // Another call already rings here (the server normally says busy for us).
    if (consent.caller !== from) send({ type: 'close', otherUsername: from, reason: 'busy' });
    return false;
  }
  if (app.state !== 'idle') return false;
  const name = shown(from);
  setStatus(`${name} is calling you.`);
  const outcome = await consent.ask(from);
  if (outcome === 'accept' && app.state === 'idle' && app.call === null) return true;
  if (outcome === 'withdrawn') {
    setStatus(`${name} hung up before the call was answered.`);
  } else {
    send({ type: 'close', otherUsername: from, reason: 'declined' });
    setStatus(outcome === 'timeout' ? `Missed a call from ${name}.` : `Declined the call from ${name}.`);
  }
  return false;
}

async function handleAnswer(data) {
  const call = app.call;
  if (!call || call.partner !== data.username || !data.answer) return;
  if (call.pc.signalingState !== 'have-local-offer') {
    console.warn('answer in signaling state', call.pc.signalingState);
    return;
  }
  try {
    await call.pc.setRemoteDescription({ type: 'answer', sdp: data.answer.sdp });
    if (app.call !== call) return;
    talk.remoteDescription(data.answer.sdp);
    setState('in-call');
    if (call.pc.connectionState !== 'connected') {
      setStatus(`${call.partner} answered; connecting…`);
    }
    await remoteDescriptionSet(call);
  } catch (err) {
    if (app.call !== call) return;
    showError(`Bad answer from ${call.partner}: ${describeError(err)}`);
    hangUp(`Call with ${call.partner} failed.`);
  }
}

async function handleCandidate(data) {
  const call = app.call;
  const candidate = data.candidate ?? null;
  if (candidate !== null && typeof candidate !== 'object') return;
  if (!call && consent.candidate(data.username, candidate)) return;
  if (!call || call.partner !== data.username) return;
  if (call.heldOffer !== null && candidate !== null) {
    if (candidate.usernameFragment === call.heldOffer.ufrag) {
      call.heldOffer.candidates.push(data);
      return;
    }
  }
  if (call.remoteSet) await addRemoteCandidate(call, candidate);
  else call.pendingRemote.push(candidate);
}

function handleClose(data) {
  if (!app.call && consent.withdraw(data.username)) return;
  const call = app.call;
  if (!call || call.partner !== data.username) return;
  const name = call.partner;
  const dialling = app.state === 'calling';
  endCall();
  if (data.reason === 'busy' && dialling) {
    showError(`${name} is busy.`);
    setStatus(`${name} is busy.`);
  } else if (data.reason === 'declined' && dialling) {
    showError(`${name} declined the call.`);
    setStatus(`${name} declined the call.`);
  } else if (data.reason === CONNECTION_HEALTHY) {
    setStatus(`${name} refused the new connection: theirs still worked. The call ended.`);
  } else if (data.reason === 'disconnected') {
    setStatus(`${name} disconnected; the call ended.`);
  } else {
    setStatus(`${name} hung up.`);
  }
}

function handleServerError(data) {
  const text = data.message || data.reason || 'unknown error';
  if (app.pendingLogin !== null && app.state === 'logged-out') {
    // Nothing but the login is sent before logging in, so this is its answer.
    const name = app.pendingLogin;
    app.pendingLogin = null;
    loginFailed(name, text);
    return;
  }
  if (data.request === 'close') {
    // A hang-up the partner cannot receive (gone, or no longer in the call): the call
    // has ended here already; nothing the user can act on.
    console.debug('close not delivered', data);
    return;
  }
  if (data.reason === 'not-in-call' && data.request === 'candidate') {
    // A candidate that crossed a hang-up on the wire; nothing the user can act on.
    console.debug('late candidate refused', data);
    return;
  }
  const call = app.call;
  if (call && app.state === 'calling' && (data.request === 'offer' || !data.request)) {
    endCall();
    showError(`Could not call ${call.partner}: ${text}`);
    setStatus('Ready.');
    return;
  }
  showError(text);
}

// Ends the call here, without telling anybody.
function endCall() {
  const call = app.call;
  if (!call) return;
  app.call = null;
  if (call.heldOffer !== null) clearTimeout(call.heldOffer.timer);
  talk.end(`the call with ${call.partner} ended`);
  controls.callEnded();
  try {
    call.pc.close();
  } catch (err) {
    console.warn('closing the peer connection', err);
  }
  for (const track of call.remoteStream.getTracks()) track.stop();
  ui.remote.pause();
  ui.remote.srcObject = null;
  ui.remote.muted = false;
  ui.unmute.hidden = true;
  ui.remoteLabel.textContent = 'Nobody yet';
  const connected = app.ws !== null && app.ws.readyState === WebSocket.OPEN;
  setState(connected && app.username !== null ? 'idle' : 'logged-out');
}

// Ends the call and tells the partner.
function hangUp(statusText) {
  const call = app.call;
  if (!call) return;
  if (!send({ type: 'close', otherUsername: call.partner })) {
    // The server is away: the partner hears it once we are logged in again.
    app.unsentCloses.push(call.partner);
  }
  endCall();
  setStatus(statusText ?? `Call with ${call.partner} ended.`);
}

// ---- wiring ----------------------------------------------------------------------------------

async function loadConfig() {
  try {
    const response = await fetch('/config', { cache: 'no-store' });
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
    const config = await response.json();
    if (Array.isArray(config.iceServers)) app.iceServers = config.iceServers;
    app.tokenRequired = config.tokenRequired === true;
  } catch (err) {
    console.warn('GET /config failed; no ICE servers', err);
    showNotice('Could not load the server configuration; calls may only work on this network.');
  }
  ui.tokenField.hidden = !app.tokenRequired;
}

ui.loginForm.addEventListener('submit', (event) => {
  event.preventDefault();
  login();
});
ui.callForm.addEventListener('submit', (event) => {
  event.preventDefault();
  startCall();
});
ui.hangup.addEventListener('click', () => {
  clearError();
  hangUp();
});
ui.unmute.addEventListener('click', () => {
  ui.remote.muted = false;
  ui.unmute.hidden = true;
  playRemote();
});
window.addEventListener('pagehide', () => {
  if (app.call) hangUp();
});

window.webcamPeer = Object.freeze({
  get pc() {
    return app.call ? app.call.pc : null;
  },
  get state() {
    return app.state;
  },
  get username() {
    return app.username;
  },
  get partner() {
    return app.call ? app.call.partner : null;
  },
  get connected() {
    return app.ws !== null && app.ws.readyState === WebSocket.OPEN;
  },
  // The call's chat channel while open, for tests that play a misbehaving partner.
  get chatChannel() {
    return talk.chat.channel;
  },
});

setState('logged-out');
setStatus('Connecting…');
await loadConfig();
connect();
