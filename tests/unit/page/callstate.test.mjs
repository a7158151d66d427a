// signaling/static/callstate.js: the page's and the connection's state tables.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { IllegalTransition, LINK, Link, PAGE, PageState, pageControls, step } from '../../../signaling/static/callstate.js';

const run = (machine, start, events) => {
  let state = start;
  const done = [];
  for (const event of events) {
    const move = step(machine, state, event);
    state = move.next;
    done.push(...move.actions);
  }
  return { state, done };
};

test('a call dialled, answered and ended takes the page back to idle', () => {
  const { state } = run(PAGE, PageState.LOGGED_OUT, ['logged-in', 'dial', 'answered']);
  assert.equal(state, PageState.IN_CALL);
  assert.equal(step(PAGE, state, 'call-ended').next, PageState.IDLE);
  assert.equal(step(PAGE, state, 'call-ended-offline').next, PageState.LOGGED_OUT);
});

test('a call goes on while the server is away and after the page logs in again', () => {
  for (const busy of [PageState.CALLING, PageState.IN_CALL]) {
    assert.equal(run(PAGE, busy, ['server-lost', 'logged-in']).state, busy);
  }
  assert.equal(step(PAGE, PageState.IDLE, 'server-lost').next, PageState.LOGGED_OUT);
});

test('the page cannot dial unless idle', () => {
  for (const state of [PageState.LOGGED_OUT, PageState.CALLING, PageState.IN_CALL]) {
    assert.throws(() => step(PAGE, state, 'dial'), IllegalTransition);
  }
  assert.throws(() => step(PAGE, PageState.LOGGED_OUT, 'answered'), /answered is not possible while the page is logged-out/);
});

test('the controls follow the state', () => {
  assert.deepEqual(pageControls(PageState.LOGGED_OUT, { named: false, loggingIn: false }), {
    showLogin: true,
    loginDisabled: false,
    callDisabled: true,
    calleeDisabled: false,
    hangupDisabled: true,
  });
  // Reconnecting under a name: the session view stays, nothing to log in with.
  assert.equal(pageControls(PageState.LOGGED_OUT, { named: true, loggingIn: false }).showLogin, false);
  assert.equal(pageControls(PageState.LOGGED_OUT, { named: false, loggingIn: true }).loginDisabled, true);
  const idle = pageControls(PageState.IDLE, { named: true, loggingIn: false });
  assert.equal(idle.callDisabled, false);
  assert.equal(idle.hangupDisabled, true);
  const inCall = pageControls(PageState.IN_CALL, { named: true, loggingIn: false });
  assert.equal(inCall.callDisabled, true);
  assert.equal(inCall.calleeDisabled, true);
  assert.equal(inCall.hangupDisabled, false);
});

test('a connection that stays "disconnected" fails when the timer says so', () => {
  const { state, done } = run(LINK, Link.NEW, ['connecting', 'connected', 'disconnected', 'disconnect-timeout']);
  assert.equal(state, Link.FAILED);
  assert.deepEqual(done, [
    'stop-disconnect-timer',
    'stop-disconnect-timer',
    'connected',
    'interrupted',
    'start-disconnect-timer',
    'take-held-offer',
    'media-failed',
  ]);
});

test('a connection that comes back stops the timer and is connected again', () => {
  const { state, done } = run(LINK, Link.CONNECTED, ['disconnected', 'connected']);
  assert.equal(state, Link.CONNECTED);
  assert.deepEqual(done.slice(-2), ['stop-disconnect-timer', 'connected']);
});

test('"failed" fails before the held fresh offer is looked at, and is final', () => {
  const { state, done } = run(LINK, Link.CONNECTED, ['failed']);
  assert.equal(state, Link.FAILED);
  assert.deepEqual(done, ['stop-disconnect-timer', 'media-failed', 'take-held-offer']);
  assert.throws(() => step(LINK, Link.FAILED, 'connected'), IllegalTransition);
  // The timer only means something while the connection is interrupted.
  assert.throws(() => step(LINK, Link.CONNECTED, 'disconnect-timeout'), IllegalTransition);
});
