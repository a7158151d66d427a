// The data-channel wire format v1 (docs/datachannels.md), the one place the page knows it:
// channel labels, limits, and building and checking every message. Pure: no DOM, no
// channels, so it can be exercised on its own.

export const CHAT_LABEL = 'chat';
export const FILE_LABEL = 'file';
export const MAX_CHAT_BYTES = 4096; // of UTF-8 in one chat line
export const MAX_CHAT_MESSAGE_BYTES = 8192; // raw, before parsing
export const MAX_CHUNK_BYTES = 65536; // RFC 8841's default max-message-size
export const MAX_FILE_SIZE = Number.MAX_SAFE_INTEGER; // 2^53 - 1
export const CANCEL_REASONS = Object.freeze([
  'cancelled',
  'size-mismatch',
  'hash-mismatch',
  'bad-header',
  'too-large',
  'too-many',
  'disk-error',
  'protocol-error',
  'rejected',
]);

const encoder = new TextEncoder();
const HEX64 = /^[0-9a-f]{64}$/;

export function utf8Length(text) {
  return encoder.encode(text).length;
}

/** Why a chat line typed here cannot be sent, or null when it can. */
export function chatLineProblem(text) {
  if (/[\r\n]/.test(text)) return 'a chat message is one line';
  const bytes = utf8Length(text);
  if (bytes > MAX_CHAT_BYTES) {
    return `message too long (${bytes} bytes; at most ${MAX_CHAT_BYTES})`;
  }
  return null;
}

export function chatMessage(text) {
  return JSON.stringify({ type: 'chat', text });
}

// What arrived on the chat channel:
//   {kind: 'chat', text}            a line to show
//   {kind: 'refused', bytes, why}   not shown; the user is told
//   {kind: 'ignored'}               a type from a later version
export function parseChat(data) {
  if (typeof data !== 'string') {
    const bytes = data.byteLength ?? data.size ?? 0;
    return { kind: 'refused', bytes, why: 'binary' };
  }
  const bytes = utf8Length(data);
  if (bytes > MAX_CHAT_MESSAGE_BYTES) return { kind: 'refused', bytes, why: 'oversize' };
  let message;
  try {
    message = JSON.parse(data);
  } catch {
    return { kind: 'refused', bytes, why: 'not JSON' };
  }
  if (message === null || typeof message !== 'object' || Array.isArray(message)) {
    return { kind: 'refused', bytes, why: 'not an object' };
  }
  if (message.type !== 'chat') {
    return typeof message.type === 'string'
      ? { kind: 'ignored' }
      : { kind: 'refused', bytes, why: 'no type' };
  }
  if (typeof message.text !== 'string') return { kind: 'refused', bytes, why: 'no text' };
  const textBytes = utf8Length(message.text);
  if (textBytes > MAX_CHAT_BYTES) return { kind: 'refused', bytes: textBytes, why: 'oversize' };
  if (/[\r\n]/.test(message.text)) return { kind: 'refused', bytes, why: 'not one line' };
  return { kind: 'chat', text: message.text };
}

// ---- file channel ------------------------------------------------------------------------

export const fileMessages = Object.freeze({
  header: (name, size) => JSON.stringify({ type: 'file', name, size }),
  accept: () => JSON.stringify({ type: 'accept' }),
  end: (sha256) => JSON.stringify({ type: 'end', sha256 }),
  done: (sha256) => JSON.stringify({ type: 'done', sha256 }),
  cancel: (reason) => JSON.stringify({ type: 'cancel', reason }),
});

function isSize(value) {
  return Number.isSafeInteger(value) && value >= 0 && value <= MAX_FILE_SIZE;
}

// A control message on a file channel, checked field by field:
//   {type: 'file', name, size} | {type: 'accept'} | {type: 'end', sha256}
//   | {type: 'done', sha256} | {type: 'cancel', reason}
//   | {type: 'invalid', why}   anything else (the caller answers protocol-error/bad-header)
export function parseFileControl(data) {
  if (typeof data !== 'string' || utf8Length(data) > MAX_CHAT_MESSAGE_BYTES) {
    return { type: 'invalid', why: 'not a control message' };
  }
  let message;
  try {
    message = JSON.parse(data);
  } catch {
    return { type: 'invalid', why: 'not JSON' };
  }
  if (message === null || typeof message !== 'object' || Array.isArray(message)) {
    return { type: 'invalid', why: 'not an object' };
  }
  switch (message.type) {
    case 'file':
      if (typeof message.name !== 'string' || !isSize(message.size)) {
        return { type: 'invalid', why: 'bad file header' };
      }
      return { type: 'file', name: message.name, size: message.size };
    case 'accept':
      return { type: 'accept' };
    case 'end':
    case 'done':
      if (typeof message.sha256 !== 'string' || !HEX64.test(message.sha256.toLowerCase())) {
        return { type: 'invalid', why: `bad ${message.type}` };
      }
      return { type: message.type, sha256: message.sha256.toLowerCase() };
    case 'cancel':
      // An unknown reason is still a cancel; it is shown as sent.
      return { type: 'cancel', reason: typeof message.reason === 'string' ? message.reason : '' };
    default:
      return { type: 'invalid', why: `unexpected ${String(message.type)}` };
  }
}
