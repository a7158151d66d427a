// The pure data-channel helpers: wire.js, mediastate.js, filename.js and sha256.js.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { test } from 'node:test';

import { FALLBACK_NAME, MAX_NAME_BYTES, sanitiseName } from '../../../signaling/static/filename.js';
import { describeMediaState, mediaStateMessage, parseMediaState } from '../../../signaling/static/mediastate.js';
import { Sha256 } from '../../../signaling/static/sha256.js';
import { MAX_CHAT_BYTES, chatLineProblem, chatMessage, parseChat, parseFileControl } from '../../../signaling/static/wire.js';

test('chat lines: one line, bounded, and everything else refused or ignored', () => {
  assert.deepEqual(parseChat(chatMessage('hi')), { kind: 'chat', text: 'hi' });
  assert.equal(chatLineProblem('two\nlines'), 'a chat message is one line');
  assert.match(chatLineProblem('x'.repeat(MAX_CHAT_BYTES + 1)), /too long/);
  assert.equal(chatLineProblem('fine'), null);
  assert.equal(parseChat('{"type":"later"}').kind, 'ignored');
  assert.equal(parseChat('nope').why, 'not JSON');
  assert.equal(parseChat('{"type":"chat","text":"a\\nb"}').why, 'not one line');
  assert.equal(parseChat(new ArrayBuffer(3)).why, 'binary');
});

test('file control messages are checked field by field', () => {
  assert.deepEqual(parseFileControl('{"type":"file","name":"a.txt","size":3}'), { type: 'file', name: 'a.txt', size: 3 });
  assert.equal(parseFileControl('{"type":"file","name":"a","size":-1}').type, 'invalid');
  const hash = 'A'.repeat(64);
  assert.deepEqual(parseFileControl(`{"type":"end","sha256":"${hash}"}`), { type: 'end', sha256: 'a'.repeat(64) });
  assert.equal(parseFileControl('{"type":"done","sha256":"xyz"}').type, 'invalid');
  assert.deepEqual(parseFileControl('{"type":"cancel","reason":7}'), { type: 'cancel', reason: '' });
});

test('media state round-trips and reads as words', () => {
  const state = { audio: 'muted', video: 'screen' };
  assert.deepEqual(parseMediaState(mediaStateMessage(state)), state);
  assert.equal(parseMediaState('{"type":"media","audio":"loud","video":"on"}'), null);
  assert.equal(describeMediaState(state), 'muted, sharing the screen');
  assert.equal(describeMediaState({ audio: 'on', video: 'on' }), '');
});

test('received file names never pick a directory or hide themselves', () => {
  assert.equal(sanitiseName('../../etc/passwd').includes('/'), false);
  assert.equal(sanitiseName('').length > 0, true);
  assert.equal(sanitiseName('..'), FALLBACK_NAME);
  assert.ok(new TextEncoder().encode(sanitiseName('é'.repeat(500))).length <= MAX_NAME_BYTES);
});

test('the incremental SHA-256 agrees with node:crypto across block boundaries', () => {
  const data = new Uint8Array(1000).map((_, i) => (i * 7) % 256);
  const hash = new Sha256();
  for (const cut of [0, 1, 63, 64, 65, 500]) hash.update(data.subarray(cut, cut + 7));
  const expected = createHash('sha256');
  for (const cut of [0, 1, 63, 64, 65, 500]) expected.update(data.subarray(cut, cut + 7));
  assert.equal(hash.hexDigest(), expected.digest('hex'));
});
