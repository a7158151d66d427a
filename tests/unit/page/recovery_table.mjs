// Prints the page's recovery rules as JSON for tests/test_page_modules.py, which
// compares them with peer/recovery.py. Reads {sequences, sdps, randoms} on stdin:
//   sequences: [[dialled, [[ending, signalingUp], ...]], ...]  -> the steps taken
//   sdps: [[current|null, offer], ...]                       -> isFreshNegotiation
//   randoms: [r, ...]                                          -> Backoff(250, 5000) delays
import { readFileSync } from 'node:fs';

import * as recovery from '../../../signaling/static/recovery.js';

const input = JSON.parse(readFileSync(0, 'utf8'));
const backoff = (r) => {
  const delays = new recovery.Backoff(250, 5000, () => r);
  return Array.from({ length: 7 }, () => delays.next());
};
const output = {
  constants: {
    MAX_ATTEMPTS: recovery.MAX_ATTEMPTS,
    RECOVERY_TIMEOUT_MS: recovery.RECOVERY_TIMEOUT_MS,
    HANG_UP_GRACE_MS: recovery.HANG_UP_GRACE_MS,
    FRESH_OFFER_HOLD_MS: recovery.FRESH_OFFER_HOLD_MS,
    CONNECTION_HEALTHY: recovery.CONNECTION_HEALTHY,
  },
  endings: Object.values(recovery.Ending).sort(),
  steps: Object.values(recovery.Step).sort(),
  verdicts: Object.values(recovery.Verdict).sort(),
  table: Object.entries(recovery.STEPS).sort(),
  sequences: input.sequences.map(([dialled, moves]) => {
    const budget = new recovery.Recovery(dialled);
    return moves.map(([ending, signalingUp]) => budget.nextStep(ending, { signalingUp }));
  }),
  fresh: input.sdps.map(([current, offer]) => recovery.isFreshNegotiation(current, offer)),
  ufrags: input.sdps.map(([, offer]) => recovery.iceUfrag(offer)),
  backoff: input.randoms.map(backoff),
};
process.stdout.write(JSON.stringify(output));
