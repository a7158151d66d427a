// What to do when a call's media connection dies: the rules of peer/call/recovery.py, for the
// page. Pure: no DOM, no WebRTC, no timers; tests/unit/page/ checks it against the Python table.
//
// A call whose media connection fails while the server is reachable is negotiated
// afresh once, on a new RTCPeerConnection (new ICE credentials). Only the side that
// dialled sends the fresh offer, so the two never offer at once; the other side waits
// for it. A second failure, or a fresh negotiation that does not connect, ends the call.

export const MAX_ATTEMPTS = 1;
// How long the re-established call may take to connect (or its fresh offer to come).
export const RECOVERY_TIMEOUT_MS = 20000;
// A partner who hangs up closes the connection before their close crosses the server:
// the Python peer waits this long for that close before re-establishing. The page does
// not wait yet (kept here so the two stay one rule when it does).
export const HANG_UP_GRACE_MS = 2000;
// A fresh offer while our own connection still works is held this long: an honest
// partner closed its old connection first, so ours falters within it and the offer is
// taken; one that finds our connection still up is refused with this close reason.
export const FRESH_OFFER_HOLD_MS = 10000;
export const CONNECTION_HEALTHY = 'connection-healthy';
// Chromium reports a dead path "disconnected" within seconds but "failed" only once
// consent has been missing for 30 s; the Python peer gives up after about 7 s, and the
// side that dialled must re-offer while the other still waits for it.
export const DISCONNECTED_IS_FAILED_MS = 4000;

export const Ending = Object.freeze({
  MEDIA_FAILED: 'media-failed', // it had connected, then ICE failed
  REPLACED: 'replaced', // the partner sent a fresh offer: they are re-establishing
  OTHER: 'other', // hung up, closed, never connected
});

export const Step = Object.freeze({
  END: 'end',
  REOFFER: 'reoffer', // make a new connection and send a fresh offer
  AWAIT_OFFER: 'await-offer', // make a new connection from the partner's fresh offer
});

// `${ending}/${dialled}` -> step, while an attempt is left and the server is reachable.
export const STEPS = Object.freeze({
  [`${Ending.MEDIA_FAILED}/true`]: Step.REOFFER,
  [`${Ending.MEDIA_FAILED}/false`]: Step.AWAIT_OFFER,
  [`${Ending.REPLACED}/false`]: Step.AWAIT_OFFER,
  // The dialler never takes a replacement: the other side does not offer.
  [`${Ending.REPLACED}/true`]: Step.END,
});

/** The re-establishment budget of one conversation with one partner. */
export class Recovery {
  constructor(dialled) {
    this.dialled = dialled;
    this.attempts = 0;
  }

  nextStep(ending, { signalingUp }) {
    // Without the server the partner cannot be reached for a fresh offer: the call ends.
    if (ending === Ending.OTHER || !signalingUp || this.attempts >= MAX_ATTEMPTS) return Step.END;
    const step = STEPS[`${ending}/${this.dialled}`];
    if (step !== Step.END) this.attempts += 1;
    return step;
  }
}

/** The first ICE username fragment of a session description (null without one). */
export function iceUfrag(sdp) {
  const match = /^a=ice-ufrag:(\S+)/m.exec(sdp);
  return match ? match[1] : null;
}

/** Whether an offer from the current partner starts over (new ICE credentials) rather
 * than renegotiating the connection that exists (same credentials). */
export function isFreshNegotiation(currentRemoteSdp, offerSdp) {
  if (currentRemoteSdp === null || currentRemoteSdp === undefined) return false;
  const current = iceUfrag(currentRemoteSdp);
  const offered = iceUfrag(offerSdp);
  return current !== null && offered !== null && current !== offered;
}

const FAILING = Object.freeze(['disconnected', 'failed', 'closed']);

/** Whether a connection in these states has failed or is failing. */
export function mediaFailing(connectionState, iceConnectionState) {
  return FAILING.includes(connectionState) || FAILING.includes(iceConnectionState);
}

export const Verdict = Object.freeze({ TAKE: 'take', REFUSE: 'refuse', WAIT: 'wait' });

/** A held fresh offer, judged by our connection: taken once it falters, refused when it
 * has held up for the whole hold (the page sees Chromium's states where the Python
 * peer samples the bytes it receives). */
export function judgeFreshOffer({ failing, heldMs }) {
  if (failing) return Verdict.TAKE;
  return heldMs >= FRESH_OFFER_HOLD_MS ? Verdict.REFUSE : Verdict.WAIT;
}

/** What the person is told when a call ends on a media failure. */
export function failureText(partner, { recovering, everConnected }) {
  if (recovering && everConnected) return `The media connection with ${partner} failed again; call ended.`;
  if (recovering) return `Could not re-establish the call with ${partner}; call ended.`;
  return `The connection to ${partner} failed.`;
}

// The signaling socket's reconnection delays: doubled up to the cap, each scattered by
// ±50 % so that every page of a restarted server does not come back in the same instant.
export const RECONNECT_MIN_MS = 500;
export const RECONNECT_MAX_MS = 10000;

export class Backoff {
  constructor(first = RECONNECT_MIN_MS, cap = RECONNECT_MAX_MS, random = Math.random) {
    this.first = first;
    this.cap = cap;
    this.random = random;
    this.delay = first;
  }

  next() {
    const wait = Math.round(this.delay * (0.5 + this.random()));
    this.delay = Math.min(this.delay * 2, this.cap);
    return wait;
  }

  reset() {
    this.delay = this.first;
  }
}
