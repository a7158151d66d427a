// signaling/static/call.js: candidates that come too early wait for their description.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { CandidateBuffer } from '../../../signaling/static/call.js';

test('candidates are held until released, then pass straight through', () => {
  const buffer = new CandidateBuffer();
  assert.equal(buffer.hold({ candidate: 'a' }), true);
  assert.equal(buffer.hold(null), true); // the end of candidates waits too
  assert.deepEqual(buffer.release(), [{ candidate: 'a' }, null]);
  assert.equal(buffer.hold({ candidate: 'b' }), false);
  assert.deepEqual(buffer.release(), []);
});
