// The webcam-peer call page: protocol v1 over a WebSocket, one RTCPeerConnection a call.
// Everything the user should know goes to #status or #error; user data only via textContent.

const $ = (id) => document.getElementById(id);

const session = {
  ws: null,
  username: null,
  token: null,
  wantLogin: false, // log in again after a reconnect
  phase: 'logged-out', // logged-out | idle | calling | in-call
  pc: null,
  other: null,
  remoteDescribed: false,
  heldCandidates: [], // remote candidates that came before the remote description
  localStream: null,
  iceServers: [],
  reconnectDelay: 500,
  listTimer: null,
};

window.webcamPeer = {
  get pc() { return session.pc; },
  get state() { return session.phase; },
  get username() { return session.username; },
};

function status(text) { $('status').textContent = text; }
function showError(text) { $('error').textContent = text || ''; }

function setPhase(phase) {
  session.phase = phase;
  const loggedIn = phase !== 'logged-out';
  $('login-panel').hidden = loggedIn;
  $('call-panel').hidden = !loggedIn;
  $('call').disabled = phase !== 'idle';
  $('hangup').disabled = !(phase === 'calling' || phase === 'in-call');
  $('remote-label').textContent = session.other || 'nobody yet';
}

function send(message) {
  if (session.ws && session.ws.readyState === WebSocket.OPEN) {
    session.ws.send(JSON.stringify(message));
    return true;
  }
  showError('not connected to the server');
  return false;
}

// ---- the server connection ------------------------------------------------------------
function connect() {
  const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
  const ws = new WebSocket(`${scheme}//${location.host}/ws`);
  session.ws = ws;
  ws.onopen = () => {
    session.reconnectDelay = 500;
    status(session.wantLogin ? 'reconnected; logging in again…' : 'connected: choose a name');
    if (session.wantLogin) sendLogin();
  };
  ws.onmessage = (event) => {
    let message;
    try {
      message = JSON.parse(event.data);
    } catch {
      console.warn('ignoring a non-JSON frame', event.data);
      return;
    }
    handle(message).catch((error) => {
      console.error(error);
      showError(`something went wrong: ${error.message || error}`);
    });
  };
  ws.onclose = () => {
    if (session.ws !== ws) return;
    const delay = session.reconnectDelay;
    session.reconnectDelay = Math.min(delay * 2, 10000);
    status(`lost the server; reconnecting in ${(delay / 1000).toFixed(1)} s`);
    // A call in progress keeps going peer to peer; only signaling is down.
    setTimeout(connect, delay * (0.5 + Math.random()));
  };
}

function sendLogin() {
  const message = { type: 'login', username: session.username };
  if (session.token) message.token = session.token;
  send(message);
}

async function loadConfig() {
  try {
    const response = await fetch('/config');
    const config = await response.json();
    session.iceServers = Array.isArray(config.iceServers) ? config.iceServers : [];
    $('token-row').hidden = !config.tokenRequired;
  } catch (error) {
    console.warn('no /config; using no ICE servers', error);
  }
}

async function startLocalMedia() {
  if (session.localStream) return;
  const attempts = [{ video: true, audio: true }, { video: true, audio: false }, { video: false, audio: true }];
  for (const constraints of attempts) {
    try {
      session.localStream = await navigator.mediaDevices.getUserMedia(constraints);
      $('local').srcObject = session.localStream;
      if (!constraints.audio) showError('no microphone: calling with video only');
      if (!constraints.video) showError('no camera: calling with audio only');
      return;
    } catch (error) {
      console.warn('getUserMedia', constraints, error);
    }
  }
  showError('no camera or microphone available: you will only receive');
}

// ---- messages from the server ---------------------------------------------------------
async function handle(message) {
  switch (message.type) {
    case 'login': return onLogin(message);
    case 'users': return showUsers(message.users);
    case 'offer': return onOffer(message.offer, message.username);
    case 'answer': return onAnswer(message.answer, message.username);
    case 'candidate': return onCandidate(message.candidate, message.username);
    case 'close': return onClose(message.username, message.reason);
    case 'error': return onServerError(message);
    default: console.debug('ignoring', message);
  }
}

async function onLogin(message) {
  if (!message.success) {
    session.wantLogin = false;
    showError(`login refused: ${message.message || message.reason || 'try another name'}`);
    setPhase('logged-out');
    return;
  }
  session.wantLogin = true;
  showError('');
  $('me').textContent = session.username;
  if (session.phase === 'logged-out') setPhase('idle');
  status(`logged in as ${session.username}`);
  await startLocalMedia();
  send({ type: 'list' });
  clearInterval(session.listTimer);
  session.listTimer = setInterval(() => send({ type: 'list' }), 3000);
}

function showUsers(users) {
  if (!Array.isArray(users)) return;
  const list = $('users');
  list.replaceChildren();
  for (const name of users) {
    if (typeof name !== 'string' || name === session.username) continue;
    const item = document.createElement('li');
    const button = document.createElement('button');
    button.textContent = name;
    button.title = `call ${name}`;
    button.addEventListener('click', () => { $('callee').value = name; });
    item.append(button);
    list.append(item);
  }
  if (!list.children.length) {
    const item = document.createElement('li');
    item.textContent = 'nobody else yet';
    list.append(item);
  }
}

function newPeerConnection(other) {
  const pc = new RTCPeerConnection({ iceServers: session.iceServers });
  session.pc = pc;
  session.other = other;
  session.remoteDescribed = false;
  session.heldCandidates = [];
  pc.onicecandidate = (event) => {
    if (session.pc !== pc) return;
    // null marks the end of gathering, as the protocol allows.
    send({ type: 'candidate', candidate: event.candidate ? event.candidate.toJSON() : null, otherUsername: other });
  };
  pc.ontrack = (event) => {
    const remote = $('remote');
    if (!remote.srcObject) remote.srcObject = event.streams[0] || new MediaStream();
    if (!event.streams[0]) remote.srcObject.addTrack(event.track);
  };
  pc.onconnectionstatechange = () => {
    if (session.pc !== pc) return;
    if (pc.connectionState === 'connected') {
      setPhase('in-call');
      status(`in a call with ${other}`);
    } else if (pc.connectionState === 'failed') {
      send({ type: 'close', otherUsername: other, reason: 'failed' });
      endCall(`the connection with ${other} failed`);
      showError(`could not connect media with ${other} (ICE failed)`);
    }
  };
  return pc;
}

function addLocalTracks(pc) {
  if (!session.localStream) return;
  for (const track of session.localStream.getTracks()) pc.addTrack(track, session.localStream);
}

async function applyHeldCandidates(pc) {
  session.remoteDescribed = true;
  const held = session.heldCandidates;
  session.heldCandidates = [];
  for (const candidate of held) await addCandidate(pc, candidate);
}

async function addCandidate(pc, candidate) {
  try {
    await (candidate ? pc.addIceCandidate(candidate) : pc.addIceCandidate());
  } catch (error) {
    console.warn('ignoring a remote candidate', candidate, error);
  }
}

async function onOffer(offer, from) {
  if (session.pc && session.other === from) { // renegotiation within our call
    await session.pc.setRemoteDescription(offer);
    await applyHeldCandidates(session.pc);
    await session.pc.setLocalDescription(await session.pc.createAnswer());
    send({ type: 'answer', answer: session.pc.localDescription.toJSON(), otherUsername: from });
    return;
  }
  if (session.pc) {
    send({ type: 'close', otherUsername: from, reason: 'busy' });
    return;
  }
  showError('');
  status(`${from} is calling; answering…`);
  const pc = newPeerConnection(from);
  setPhase('calling');
  await pc.setRemoteDescription(offer);
  addLocalTracks(pc); // reuses the transceivers the offer created
  await applyHeldCandidates(pc);
  await pc.setLocalDescription(await pc.createAnswer());
  send({ type: 'answer', answer: pc.localDescription.toJSON(), otherUsername: from });
}

async function onAnswer(answer, from) {
  const pc = session.pc;
  if (!pc || session.other !== from) return;
  await pc.setRemoteDescription(answer);
  await applyHeldCandidates(pc);
  status(`${from} answered; connecting…`);
}

async function onCandidate(candidate, from) {
  const pc = session.pc;
  if (!pc || session.other !== from) return;
  if (!session.remoteDescribed) {
    session.heldCandidates.push(candidate);
    return;
  }
  await addCandidate(pc, candidate);
}

function onClose(from, reason) {
  if (!session.pc || session.other !== from) return;
  const why = { busy: `${from} is busy`, declined: `${from} declined the call`, disconnected: `${from} went offline` }[reason];
  endCall(why || `${from} hung up`);
}

function onServerError(message) {
  const text = message.message || message.reason || 'error';
  if (message.request === 'candidate' && message.reason === 'not-in-call') {
    // Our candidates that were on their way when the call was refused or ended.
    console.debug('late candidate dropped by the server');
    return;
  }
  if (message.request === 'login') {
    session.wantLogin = false;
    setPhase('logged-out');
  }
  if (message.request === 'offer' && session.phase === 'calling') endCall('call not placed');
  showError(text);
}

// ---- the user's actions ---------------------------------------------------------------
async function call() {
  const other = $('callee').value.trim();
  if (!other) {
    showError('type the name of the user to call');
    return;
  }
  if (other === session.username) {
    showError('you cannot call yourself');
    return;
  }
  showError('');
  const pc = newPeerConnection(other);
  setPhase('calling');
  status(`calling ${other}…`);
  if (session.localStream) {
    addLocalTracks(pc);
  } else {
    pc.addTransceiver('video', { direction: 'recvonly' });
    pc.addTransceiver('audio', { direction: 'recvonly' });
  }
  await pc.setLocalDescription(await pc.createOffer());
  send({ type: 'offer', offer: pc.localDescription.toJSON(), otherUsername: other });
}

function hangUp() {
  if (!session.other) return;
  send({ type: 'close', otherUsername: session.other });
  endCall('you hung up');
}

function endCall(why) {
  const pc = session.pc;
  session.pc = null;
  session.other = null;
  session.heldCandidates = [];
  session.remoteDescribed = false;
  if (pc) {
    pc.onicecandidate = null;
    pc.ontrack = null;
    pc.onconnectionstatechange = null;
    pc.close();
  }
  $('remote').srcObject = null;
  setPhase('idle');
  status(`call ended: ${why}`);
}

function login() {
  const name = $('username').value.trim();
  if (!name) {
    showError('choose a name first');
    return;
  }
  session.username = name;
  session.token = $('token').value || null;
  showError('');
  sendLogin();
}

$('login').addEventListener('click', login);
$('username').addEventListener('keydown', (event) => { if (event.key === 'Enter') login(); });
$('call').addEventListener('click', () => call().catch((error) => { showError(`could not call: ${error.message}`); endCall('call failed'); }));
$('callee').addEventListener('keydown', (event) => { if (event.key === 'Enter') $('call').click(); });
$('hangup').addEventListener('click', hangUp);
window.addEventListener('beforeunload', () => { if (session.other) send({ type: 'close', otherUsername: session.other }); });

setPhase('logged-out');
loadConfig().finally(connect);
