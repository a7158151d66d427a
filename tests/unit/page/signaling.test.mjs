// signaling/static/signaling.js: the server's frames as typed messages.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { describeError, parseServerMessage } from '../../../signaling/static/signaling.js';

const parse = (object) => parseServerMessage(JSON.stringify(object));

test('what the page cannot use is dropped', () => {
  for (const frame of ['not json', '[]', 'null', '"text"', '{"type":"nope"}', '{"type":"__proto__"}']) {
    assert.equal(parseServerMessage(frame), null, frame);
  }
  assert.equal(parse({ type: 'offer', username: 'bob', offer: { sdp: 5 } }), null);
  assert.equal(parse({ type: 'offer', offer: { sdp: 'v=0' } }), null); // no sender
  assert.equal(parse({ type: 'answer', username: 'bob' }), null);
  assert.equal(parse({ type: 'candidate', username: 'bob', candidate: 'x' }), null);
  assert.equal(parse({ type: 'users', users: 'alice' }), null);
});

test('relayed messages carry their sender', () => {
  assert.deepEqual(parse({ type: 'offer', username: 'bob', offer: { type: 'offer', sdp: 'v=0' } }), {
    type: 'offer',
    from: 'bob',
    sdp: 'v=0',
  });
  assert.deepEqual(parse({ type: 'candidate', username: 'bob' }), { type: 'candidate', from: 'bob', candidate: null });
  assert.deepEqual(parse({ type: 'close', username: 'bob', reason: 'busy' }), {
    type: 'close',
    from: 'bob',
    reason: 'busy',
  });
  assert.deepEqual(parse({ type: 'users', users: ['a', 3, 'b'] }), { type: 'users', users: ['a', 'b'] });
});

test("login replies and errors keep what the page shows and uses", () => {
  const ok = parse({ type: 'login', success: true, iceServers: [{ urls: 'stun:x' }], ticket: 't' });
  assert.equal(ok.success, true);
  assert.deepEqual(ok.iceServers, [{ urls: 'stun:x' }]);
  assert.equal(ok.ticket, 't');
  const refused = parse({ type: 'login', success: 'yes', reason: 'username-taken', ticket: 5 });
  assert.equal(refused.success, false);
  assert.equal(refused.ticket, null);
  assert.equal(refused.reason, 'username-taken');
  assert.equal(parse({ type: 'error', reason: 'busy', message: 'bob is busy' }).text, 'bob is busy');
  assert.equal(parse({ type: 'error', reason: 'busy' }).text, 'busy');
  assert.equal(parse({ type: 'error' }).text, 'unknown error');
  assert.equal(parse({ type: 'error', request: 'close' }).request, 'close');
});

test('errors are described by their message', () => {
  assert.equal(describeError(new Error('boom')), 'boom');
  assert.equal(describeError('plain'), 'plain');
  assert.equal(describeError(null), 'null');
});
