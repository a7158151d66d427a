// The page's state machines as tables: state x event -> next state + the actions the
// shell (conversation.js) carries out, like peer/call/connection.py's TRANSITIONS. Pure: no DOM,
// no WebRTC, no timers. A move the table does not hold raises IllegalTransition.

export class IllegalTransition extends Error {
  constructor(table, state, event) {
    super(`${event} is not possible while the ${table} is ${state}`);
    this.name = 'IllegalTransition';
    this.state = state;
    this.event = event;
  }
}

/** A table from rows of [states, event, next (null: stay), actions]. */
export function table(name, rows) {
  const moves = new Map();
  for (const [states, event, next, actions = []] of rows) {
    for (const state of states) {
      moves.set(`${state}/${event}`, Object.freeze({ next: next ?? state, actions: Object.freeze(actions) }));
    }
  }
  return Object.freeze({ name, moves });
}

/** {next, actions} for ``event`` in ``state``. */
export function step(machine, state, event) {
  const move = machine.moves.get(`${state}/${event}`);
  if (move === undefined) throw new IllegalTransition(machine.name, state, event);
  return move;
}

// ---- the page: logged out, idle, calling somebody, in a call ------------------------------

export const PageState = Object.freeze({
  LOGGED_OUT: 'logged-out',
  IDLE: 'idle',
  CALLING: 'calling',
  IN_CALL: 'in-call',
});
const { LOGGED_OUT, IDLE, CALLING, IN_CALL } = PageState;
const ANY = [LOGGED_OUT, IDLE, CALLING, IN_CALL];
const BUSY = [CALLING, IN_CALL];

export const PAGE = table('page', [
  // A login that comes back while a call goes on (the server restarted) keeps the call.
  [[LOGGED_OUT, IDLE], 'logged-in', IDLE],
  [BUSY, 'logged-in', null],
  [ANY, 'login-failed', LOGGED_OUT],
  [[IDLE], 'dial', CALLING],
  [[IDLE, IN_CALL], 'answering', IN_CALL],
  [BUSY, 'answered', IN_CALL],
  [ANY, 'call-ended', IDLE],
  [ANY, 'call-ended-offline', LOGGED_OUT],
  // A call goes on without the server: media flows peer to peer.
  [[LOGGED_OUT, IDLE], 'server-lost', LOGGED_OUT],
  [BUSY, 'server-lost', null],
]);

/** What the page's controls allow in ``state``. */
export function pageControls(state, { named, loggingIn }) {
  const busy = state === CALLING || state === IN_CALL;
  // While reconnecting under a name the page keeps the session view, not the login form.
  const showLogin = state === LOGGED_OUT && !named;
  return {
    showLogin,
    loginDisabled: !showLogin || loggingIn,
    callDisabled: state !== IDLE,
    calleeDisabled: busy,
    hangupDisabled: !busy,
  };
}

// ---- one RTCPeerConnection, by the connectionState Chromium reports ----------------------

export const Link = Object.freeze({
  NEW: 'new',
  CONNECTED: 'connected',
  INTERRUPTED: 'interrupted', // "disconnected": may come back, failed if it does not soon
  FAILED: 'failed',
});
const LIVE = [Link.NEW, Link.CONNECTED, Link.INTERRUPTED];

export const LINK = table('connection', [
  [LIVE, 'connected', Link.CONNECTED, ['stop-disconnect-timer', 'connected']],
  [LIVE, 'new', null, ['stop-disconnect-timer']],
  [LIVE, 'connecting', null, ['stop-disconnect-timer']],
  [LIVE, 'closed', null, ['stop-disconnect-timer']],
  [
    [Link.NEW, Link.CONNECTED],
    'disconnected',
    Link.INTERRUPTED,
    ['interrupted', 'start-disconnect-timer', 'take-held-offer'],
  ],
  [[Link.INTERRUPTED], 'disconnected', null, ['take-held-offer']],
  [[Link.INTERRUPTED], 'disconnect-timeout', Link.FAILED, ['media-failed']],
  [LIVE, 'failed', Link.FAILED, ['stop-disconnect-timer', 'media-failed', 'take-held-offer']],
]);
