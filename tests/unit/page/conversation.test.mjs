// signaling/static/conversation.js driven in-process: a fake RTCPeerConnection and a
// fake server session, the real tables (callstate.js, recovery.js) and Page. What is
// checked is what the person and the partner see: status lines, errors, messages sent.
import assert from 'node:assert/strict';
import { mock, test } from 'node:test';

import { PageState } from '../../../signaling/static/callstate.js';
import { Conversation } from '../../../signaling/static/conversation.js';
import { Page } from '../../../signaling/static/page.js';
import { CONNECTION_HEALTHY, DISCONNECTED_IS_FAILED_MS, FRESH_OFFER_HOLD_MS } from '../../../signaling/static/recovery.js';

let made = 0;
class FakePeerConnection extends EventTarget {
  constructor() {
    super();
    this.id = ++made;
    this.connectionState = 'new';
    this.iceConnectionState = 'new';
    this.signalingState = 'stable';
    this.localDescription = null;
    this.remoteDescription = null;
    this.closed = false;
  }
  addTrack() {}
  addTransceiver() {}
  async createOffer() {
    return { type: 'offer', sdp: `a=ice-ufrag:ours${this.id}\r\n` };
  }
  async createAnswer() {
    return { type: 'answer', sdp: `a=ice-ufrag:ours${this.id}\r\n` };
  }
  async setLocalDescription(description) {
    this.localDescription = description;
    this.signalingState = description.type === 'offer' ? 'have-local-offer' : 'stable';
  }
  async setRemoteDescription(description) {
    this.remoteDescription = description;
    this.signalingState = description.type === 'offer' ? 'have-remote-offer' : 'stable';
  }
  async addIceCandidate() {}
  close() {
    this.closed = true;
  }
  become(state) {
    this.connectionState = state;
    this.iceConnectionState = state;
    this.dispatchEvent(new Event('connectionstatechange'));
  }
}
globalThis.RTCPeerConnection = FakePeerConnection;
globalThis.MediaStream = class {
  addTrack() {}
  getTracks() {
    return [];
  }
};

const settle = () => new Promise((resolve) => setImmediate(resolve));
const offerFrom = (from, ufrag) => ({ from, sdp: `v=0\r\na=ice-ufrag:${ufrag}\r\n` });

function conversation({ consentOutcome = 'accept' } = {}) {
  const seen = { status: '', error: '', notice: '', sent: [] };
  const view = {
    setStatus: (text) => (seen.status = text),
    showError: (text) => (seen.error = text),
    clearError: () => (seen.error = ''),
    showNotice: (text) => (seen.notice = text),
    showState: () => {},
  };
  const login = { username: 'alice', pending: null, iceServers: [] };
  const page = new Page(view, () => ({ named: true, loggingIn: false }));
  page.fire('logged-in');
  const session = { open: true, send: (message) => seen.sent.push(message) > 0 };
  const noop = () => {};
  const talk = { start: noop, end: noop, remoteDescription: noop };
  const consent = {
    caller: null,
    candidate: () => false,
    withdraw: () => false,
    ask: async () => consentOutcome,
    takeCandidates: () => [],
  };
  const parts = {
    view,
    page,
    session,
    login,
    talk,
    consent,
    media: { start: async () => null },
    remote: { show: noop, addTrack: noop, clear: noop },
    controls: { callEnded: noop },
    callee: { value: 'bob' },
  };
  return { talk: new Conversation(parts), seen, page };
}

async function dialledAndConnected() {
  const { talk, seen, page } = conversation();
  await talk.dial();
  assert.equal(seen.sent.at(-1).type, 'offer');
  await talk.answer({ from: 'bob', sdp: 'v=0\r\na=ice-ufrag:theirs1\r\n' });
  talk.call.pc.become('connected');
  return { talk, seen, page };
}

test('a busy partner ends the call we dial, and we are told', async () => {
  mock.timers.enable({ apis: ['setTimeout'] });
  try {
    const { talk, seen, page } = conversation();
    await talk.dial();
    assert.equal(page.state, PageState.CALLING);
    assert.deepEqual(seen.sent.at(-1).otherUsername, 'bob');
    talk.close({ from: 'bob', reason: 'busy' });
    assert.equal(seen.error, 'bob is busy.');
    assert.equal(page.state, PageState.IDLE);
    assert.equal(talk.call, null);
  } finally {
    mock.timers.reset();
  }
});

test('the dialler re-offers once on a new connection, and ends the call on a second failure', async () => {
  mock.timers.enable({ apis: ['setTimeout'] });
  try {
    const { talk, seen, page } = await dialledAndConnected();
    assert.equal(seen.status, 'In a call with bob.');
    const first = talk.call.pc;
    first.become('failed');
    await settle();
    assert.equal(first.closed, true);
    assert.notEqual(talk.call.pc, first);
    assert.match(seen.error, /reconnecting the call \(1 attempt\)/);
    const fresh = seen.sent.at(-1);
    assert.equal(fresh.type, 'offer');
    assert.equal(fresh.offer.sdp, `a=ice-ufrag:ours${talk.call.pc.id}\r\n`); // new ICE credentials
    await talk.answer({ from: 'bob', sdp: 'v=0\r\na=ice-ufrag:theirs2\r\n' });
    talk.call.pc.become('connected');
    assert.equal(seen.status, 'Call with bob re-established.');
    talk.call.pc.become('failed');
    assert.deepEqual(seen.sent.at(-1), { type: 'close', otherUsername: 'bob' });
    assert.equal(seen.error, 'The media connection with bob failed again; call ended.');
    assert.equal(page.state, PageState.IDLE);
  } finally {
    mock.timers.reset();
  }
});

test('"disconnected" for long enough is a failure', async () => {
  mock.timers.enable({ apis: ['setTimeout'] });
  try {
    const { talk, seen } = await dialledAndConnected();
    const first = talk.call.pc;
    first.become('disconnected');
    assert.match(seen.status, /interrupted/);
    mock.timers.tick(DISCONNECTED_IS_FAILED_MS - 1);
    assert.equal(first.closed, false);
    mock.timers.tick(1);
    await settle();
    assert.equal(first.closed, true);
    assert.equal(seen.sent.at(-1).type, 'offer');
  } finally {
    mock.timers.reset();
  }
});

test('the side that did not dial waits for the fresh offer and answers it', async () => {
  mock.timers.enable({ apis: ['setTimeout'] });
  try {
    const { talk, seen, page } = conversation();
    await talk.offer(offerFrom('bob', 'theirs1'));
    assert.equal(seen.sent.at(-1).type, 'answer');
    assert.equal(page.state, PageState.IN_CALL);
    talk.call.pc.become('connected');
    const sentBefore = seen.sent.length;
    talk.call.pc.become('failed');
    assert.equal(seen.sent.length, sentBefore); // no offer of ours: no glare
    await talk.offer(offerFrom('bob', 'theirs2'));
    assert.equal(seen.sent.at(-1).type, 'answer');
    talk.call.pc.become('connected');
    assert.equal(seen.status, 'Call with bob re-established.');
  } finally {
    mock.timers.reset();
  }
});

test('a fresh offer while our media flows is held, then refused', async () => {
  mock.timers.enable({ apis: ['setTimeout'] });
  try {
    const { talk, seen } = await dialledAndConnected();
    const pc = talk.call.pc;
    await talk.offer(offerFrom('bob', 'intruder'));
    mock.timers.tick(FRESH_OFFER_HOLD_MS);
    assert.deepEqual(seen.sent.at(-1), { type: 'close', otherUsername: 'bob', reason: CONNECTION_HEALTHY });
    assert.match(seen.notice, /Refused a new connection from bob/);
    assert.equal(talk.call.pc, pc); // the call goes on
  } finally {
    mock.timers.reset();
  }
});

test('a declined call sends its refusal and makes no connection', async () => {
  const { talk, seen, page } = conversation({ consentOutcome: 'decline' });
  const before = made;
  await talk.offer(offerFrom('bob', 'theirs1'));
  assert.deepEqual(seen.sent.at(-1), { type: 'close', otherUsername: 'bob', reason: 'declined' });
  assert.equal(made, before);
  assert.equal(page.state, PageState.IDLE);
  assert.equal(seen.status, 'Declined the call from bob.');
});
