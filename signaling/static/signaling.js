// The signaling session: one WebSocket to the server at a time, reconnected with
// backoff when it drops, and the server's frames as typed messages (docs/protocol.md).
// parseServerMessage is pure; the session needs a browser's WebSocket.

import { Backoff } from './recovery.js';

const string = (value) => (typeof value === 'string' ? value : null);

// type -> the fields the page reads, checked; anything else is dropped here.
const PARSERS = Object.freeze({
  login: (m) => ({
    success: m.success === true,
    iceServers: Array.isArray(m.iceServers) ? m.iceServers : null,
    ticket: string(m.ticket),
    reason: string(m.reason),
    message: string(m.message),
  }),
  users: (m) => (Array.isArray(m.users) ? { users: m.users.filter((u) => typeof u === 'string') } : null),
  offer: (m) =>
    string(m.username) !== null && m.offer && typeof m.offer.sdp === 'string'
      ? { from: m.username, sdp: m.offer.sdp }
      : null,
  answer: (m) =>
    string(m.username) !== null && m.answer && typeof m.answer.sdp === 'string'
      ? { from: m.username, sdp: m.answer.sdp }
      : null,
  candidate: (m) => {
    const candidate = m.candidate ?? null;
    if (candidate !== null && typeof candidate !== 'object') return null;
    return { from: string(m.username), candidate };
  },
  close: (m) => ({ from: string(m.username), reason: string(m.reason) }),
  error: (m) => ({
    reason: string(m.reason),
    request: string(m.request),
    text: string(m.message) || string(m.reason) || 'unknown error',
  }),
});

/** A frame from the server as {type, ...fields}, or null when the page cannot use it. */
export function parseServerMessage(frame) {
  let data;
  try {
    data = JSON.parse(frame);
  } catch {
    return null;
  }
  if (data === null || typeof data !== 'object' || !Object.hasOwn(PARSERS, data.type)) return null;
  const fields = PARSERS[data.type](data);
  return fields === null ? null : { type: data.type, ...fields };
}

export function describeError(err) {
  if (err && typeof err === 'object' && 'message' in err && err.message) return String(err.message);
  return String(err);
}

function socketUrl() {
  const scheme = window.location.protocol === 'https:' ? 'wss:' : 'ws:';
  return `${scheme}//${window.location.host}/ws`;
}

export class SignalingSession {
  // handlers: {opened(), message(msg), closed(), waiting(seconds|null), failed(text)}
  constructor(handlers) {
    this.handlers = handlers;
    this.ws = null;
    this.backoff = new Backoff();
    this.reconnectTimer = null;
  }

  get open() {
    return this.ws !== null && this.ws.readyState === WebSocket.OPEN;
  }

  send(message) {
    if (!this.open) {
      console.warn('not connected; dropped', message.type);
      return false;
    }
    this.ws.send(JSON.stringify(message));
    return true;
  }

  connect() {
    if (this.reconnectTimer !== null) {
      clearTimeout(this.reconnectTimer);
      this.reconnectTimer = null;
    }
    if (this.ws && this.ws.readyState <= WebSocket.OPEN) return;
    let ws;
    try {
      ws = new WebSocket(socketUrl());
    } catch (err) {
      this.handlers.failed(`Cannot open the signaling connection: ${describeError(err)}`);
      this.scheduleReconnect();
      return;
    }
    this.ws = ws;
    ws.addEventListener('open', () => {
      if (this.ws !== ws) return;
      this.backoff.reset();
      this.handlers.opened();
    });
    ws.addEventListener('message', (event) => {
      if (this.ws !== ws) return;
      const message = parseServerMessage(event.data);
      if (message === null) {
        console.debug('ignoring a frame the page does not use', event.data);
        return;
      }
      this.handlers.message(message);
    });
    ws.addEventListener('close', () => {
      if (this.ws !== ws) return;
      this.ws = null;
      this.handlers.closed();
      this.scheduleReconnect();
    });
  }

  scheduleReconnect() {
    if (this.reconnectTimer !== null) return;
    const delay = this.backoff.next();
    this.handlers.waiting((delay / 1000).toFixed(1));
    this.reconnectTimer = setTimeout(() => {
      this.reconnectTimer = null;
      this.handlers.waiting(null);
      this.connect();
    }, delay);
  }
}
