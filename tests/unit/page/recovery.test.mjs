// signaling/static/recovery.js: who re-offers, only once, and the fresh-offer hold.
// tests/test_page_modules.py checks the same table against peer/recovery.py.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import {
  Backoff,
  Ending,
  FRESH_OFFER_HOLD_MS,
  MAX_ATTEMPTS,
  Recovery,
  Step,
  Verdict,
  failureText,
  iceUfrag,
  isFreshNegotiation,
  judgeFreshOffer,
  mediaFailing,
} from '../../../signaling/static/recovery.js';

const sdp = (ufrag) => `v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 96\r\na=ice-ufrag:${ufrag}\r\na=ice-pwd:x\r\n`;

test('only the side that dialled re-offers; the other awaits the fresh offer', () => {
  const dialler = new Recovery(true);
  assert.equal(dialler.nextStep(Ending.MEDIA_FAILED, { signalingUp: true }), Step.REOFFER);
  const callee = new Recovery(false);
  assert.equal(callee.nextStep(Ending.MEDIA_FAILED, { signalingUp: true }), Step.AWAIT_OFFER);
  assert.equal(new Recovery(false).nextStep(Ending.REPLACED, { signalingUp: true }), Step.AWAIT_OFFER);
  assert.equal(new Recovery(true).nextStep(Ending.REPLACED, { signalingUp: true }), Step.END);
});

test('one attempt, then the call ends', () => {
  for (const dialled of [true, false]) {
    const recovery = new Recovery(dialled);
    for (let i = 0; i < MAX_ATTEMPTS; i += 1) {
      assert.notEqual(recovery.nextStep(Ending.MEDIA_FAILED, { signalingUp: true }), Step.END);
    }
    assert.equal(recovery.nextStep(Ending.MEDIA_FAILED, { signalingUp: true }), Step.END);
    assert.equal(recovery.nextStep(Ending.REPLACED, { signalingUp: true }), Step.END);
    assert.equal(recovery.attempts, MAX_ATTEMPTS);
  }
});

test('no attempt without the server, or after a hang-up, and none is spent', () => {
  for (const ending of Object.values(Ending)) {
    const recovery = new Recovery(true);
    assert.equal(recovery.nextStep(ending, { signalingUp: false }), Step.END);
    assert.equal(recovery.nextStep(Ending.OTHER, { signalingUp: true }), Step.END);
    assert.equal(recovery.attempts, 0);
  }
});

test('a fresh negotiation is one with other ICE credentials', () => {
  assert.equal(iceUfrag(sdp('abcd')), 'abcd');
  assert.equal(iceUfrag('v=0\r\n'), null);
  assert.equal(isFreshNegotiation(sdp('a1'), sdp('b2')), true);
  assert.equal(isFreshNegotiation(sdp('a1'), sdp('a1')), false); // renegotiation
  assert.equal(isFreshNegotiation(null, sdp('b2')), false); // no connection yet
  assert.equal(isFreshNegotiation(sdp('a1'), 'v=0\r\n'), false);
});

test('a held fresh offer is taken once our connection falters, refused after the hold', () => {
  assert.equal(mediaFailing('connected', 'connected'), false);
  for (const bad of ['disconnected', 'failed', 'closed']) {
    assert.equal(mediaFailing(bad, 'connected'), true);
    assert.equal(mediaFailing('connected', bad), true);
  }
  assert.equal(judgeFreshOffer({ failing: false, heldMs: 0 }), Verdict.WAIT);
  assert.equal(judgeFreshOffer({ failing: false, heldMs: FRESH_OFFER_HOLD_MS - 1 }), Verdict.WAIT);
  assert.equal(judgeFreshOffer({ failing: false, heldMs: FRESH_OFFER_HOLD_MS }), Verdict.REFUSE);
  assert.equal(judgeFreshOffer({ failing: true, heldMs: FRESH_OFFER_HOLD_MS }), Verdict.TAKE);
});

test('the words for a call that ends on a failure', () => {
  assert.match(failureText('bob', { recovering: false, everConnected: true }), /connection to bob failed/);
  assert.match(failureText('bob', { recovering: true, everConnected: true }), /failed again/);
  assert.match(failureText('bob', { recovering: true, everConnected: false }), /Could not re-establish/);
});

test('reconnection delays double up to the cap, scattered by ±50 %', () => {
  const middle = new Backoff(500, 10000, () => 0.5);
  assert.deepEqual(
    Array.from({ length: 7 }, () => middle.next()),
    [500, 1000, 2000, 4000, 8000, 10000, 10000],
  );
  middle.reset();
  assert.equal(middle.next(), 500);
  assert.equal(new Backoff(500, 10000, () => 0).next(), 250);
  assert.equal(new Backoff(500, 10000, () => 0.999999).next(), 750);
});
