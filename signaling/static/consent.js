// An incoming call rings until the person says Accept or Decline (docs/security.md):
// until then the page holds only the caller's name, its offer and its candidates; no
// RTCPeerConnection, no camera, no microphone. Unanswered for ANSWER_WITHIN_MS it is
// declined, as the Python peer declines at its terminal.

export const ANSWER_WITHIN_MS = 30000;
// What a ringing caller may trickle before the answer (the Python peer's cap per call).
const MAX_WAITING_CANDIDATES = 100;
const MAX_SHOWN_NAME = 64;
// Control, format, unassigned, private-use and separator characters but the space: the
// same rule as the Python peer's printable filter (peer/tty/untrusted.py).
const UNPRINTABLE = /[\p{C}\p{Z}]/gu;

/** Remote text as it may be drawn: every unprintable character becomes U+FFFD. */
export function shown(text, limit = MAX_SHOWN_NAME) {
  const clean = String(text).replace(UNPRINTABLE, (c) => (c === ' ' ? c : '\ufffd'));
  const chars = Array.from(clean);
  return chars.length > limit ? `${chars.slice(0, limit).join('')}…` : clean;
}

export class CallConsent {
  constructor({ box, name, accept, decline }, answerWithinMs = ANSWER_WITHIN_MS) {
    this.box = box;
    this.name = name;
    this.answerWithinMs = answerWithinMs;
    this.ringing = null; // { caller, candidates, timer, resolve }
    accept.addEventListener('click', () => this.settle('accept'));
    decline.addEventListener('click', () => this.settle('decline'));
    this.box.hidden = true;
  }

  get caller() {
    return this.ringing ? this.ringing.caller : null;
  }

  // Resolves to 'accept', 'decline', 'timeout' or 'withdrawn' (the caller hung up, or
  // the page lost the server). Only one call rings at a time.
  ask(caller) {
    if (this.ringing) throw new Error('a call is already ringing');
    return new Promise((resolve) => {
      const timer = setTimeout(() => this.settle('timeout'), this.answerWithinMs);
      this.ringing = { caller, candidates: [], timer, resolve };
      this.name.textContent = shown(caller);
      this.box.hidden = false;
    });
  }

  // A candidate the ringing caller trickled: kept for the connection made on Accept.
  candidate(caller, candidate) {
    if (this.caller !== caller) return false;
    if (this.ringing.candidates.length < MAX_WAITING_CANDIDATES) {
      this.ringing.candidates.push(candidate);
    }
    return true;
  }

  // The candidates that came while ringing; once, after Accept.
  takeCandidates() {
    return this.taken ? this.taken.splice(0) : [];
  }

  withdraw(caller) {
    if (caller !== undefined && this.caller !== caller) return false;
    return this.settle('withdrawn');
  }

  settle(outcome) {
    const ringing = this.ringing;
    if (!ringing) return false;
    this.ringing = null;
    clearTimeout(ringing.timer);
    this.box.hidden = true;
    this.name.textContent = '';
    this.taken = outcome === 'accept' ? ringing.candidates : null;
    ringing.resolve(outcome);
    return true;
  }
}
