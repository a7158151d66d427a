// File transfer over one `file` data channel per transfer (docs/datachannels.md), both
// directions, each shown as a row with a progress bar, a cancel button and, for a
// received file that passed its size and hash check, a download link.
//
// Memory stays bounded on both sides: the sender reads the file a slice at a time and
// waits on bufferedamountlow whenever the channel holds more than HIGH_WATER bytes; the
// receiver hashes as bytes arrive and folds them into Blobs every BLOB_PART_BYTES, which
// Chromium may keep on disk, never one growing ArrayBuffer.

import { sanitiseName } from './filename.js';
import { Sha256 } from './sha256.js';
import { FILE_LABEL, MAX_CHUNK_BYTES, fileMessages, parseFileControl } from './wire.js';

const MiB = 1024 * 1024;
// Chat shares the call's SCTP association with file data: a line typed mid-transfer
// waits behind whatever is queued, so the queue is kept short (the Python peer uses
// the same marks); a fuller one sent no faster here.
export const HIGH_WATER = 1 * MiB;
export const LOW_WATER = 256 * 1024;
const READ_BYTES = 1 * MiB; // one file.slice() read, sent as MAX_CHUNK_BYTES messages
const BLOB_PART_BYTES = 4 * MiB;
export const MAX_RECEIVE_BYTES = 1024 * MiB; // the Python peer's default --max-receive-size
// Incoming transfers running at once; a further one is refused `too-many`, as the Python peer does.
export const MAX_INCOMING_AT_ONCE = 8;

// A channel that said its last word waits this long for it to leave before closing.
const SEND_TIMEOUT_MS = 5000;
// ...and then this long for the partner, who has read it, to close first.
const PARTNER_CLOSES_MS = 1000;

// Closes a file channel once the message just sent on it has gone. Closing resets the
// SCTP stream, and a stream reset drops the messages still queued on it (bufferedAmount
// reaching 0 means SCTP has them, not that they are on the wire), so a close() right
// after send() loses a final `cancel` whenever the machine is busy.
export function closeAfterLastWord(channel) {
  const deadline = Date.now() + SEND_TIMEOUT_MS;
  const open = () => channel.readyState === 'open' || channel.readyState === 'connecting';
  const check = () => {
    if (!open()) return;
    if (channel.bufferedAmount > 0 && Date.now() < deadline) {
      setTimeout(check, 50);
      return;
    }
    setTimeout(() => {
      if (open()) channel.close();
    }, PARTNER_CLOSES_MS);
  };
  check();
}

// data-state of a row, and where it may go from there. The end states are final: a late
// message or event for a finished transfer changes nothing.
const TRANSITIONS = Object.freeze({
  sending: ['done', 'failed', 'cancelled'],
  receiving: ['done', 'failed', 'cancelled'],
  done: [],
  failed: [],
  cancelled: [],
});

// Which control message each side expects in each phase; anything else is a protocol error.
const EXPECTED = Object.freeze({
  out: { offered: ['accept', 'cancel'], streaming: ['cancel'], ended: ['done', 'cancel'] },
  in: { header: ['file'], offered: ['cancel'], streaming: ['end', 'cancel'] },
});

class Finished extends Error {}

export function formatBytes(bytes) {
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < MiB) return `${(bytes / 1024).toFixed(1)} KiB`;
  if (bytes < 1024 * MiB) return `${(bytes / MiB).toFixed(1)} MiB`;
  return `${(bytes / (1024 * MiB)).toFixed(2)} GiB`;
}

function percent(bytes, size) {
  return size === 0 ? 100 : Math.floor((bytes * 100) / size);
}

// One transfer's row on the page. Everything from the other side goes in as textContent.
class Row {
  constructor(list, direction, label) {
    this.li = document.createElement('li');
    this.li.className = 'transfer';
    this.li.dataset.direction = direction;
    this.name = document.createElement('span');
    this.name.className = 'name';
    this.progress = document.createElement('progress');
    this.progress.value = 0;
    this.progress.max = 1;
    this.setName(label);
    this.amount = document.createElement('span');
    this.amount.className = 'amount';
    this.cancel = document.createElement('button');
    this.cancel.type = 'button';
    this.cancel.className = 'cancel';
    this.cancel.textContent = 'Cancel';
    this.outcome = document.createElement('span');
    this.outcome.className = 'outcome';
    this.li.append(this.name, this.progress, this.amount, this.cancel, this.outcome);
    list.prepend(this.li);
    this.decide = null; // Accept / Reject while a received file waits for them
  }

  setName(name) {
    this.name.textContent = name;
    this.progress.setAttribute('aria-label', name);
  }

  show(bytes, size) {
    // <progress> max must be positive; an empty file is simply complete.
    this.progress.max = Math.max(size, 1);
    this.progress.value = size === 0 ? 1 : bytes;
    this.amount.textContent = `${formatBytes(bytes)} of ${formatBytes(size)} (${percent(bytes, size)}%)`;
  }

  finish(state, text) {
    this.li.dataset.state = state;
    this.outcome.textContent = text;
    this.cancel.hidden = true;
    if (this.decide) this.decide.remove();
    this.decide = null;
    delete this.li.dataset.waiting;
    const clear = document.createElement('button');
    clear.type = 'button';
    clear.className = 'clear';
    clear.textContent = 'Clear';
    clear.addEventListener('click', () => this.clear());
    this.li.append(clear);
  }

  // Accept / Reject for a received file's header; nothing more is taken before Accept.
  ask(onAccept, onReject) {
    this.decide = document.createElement('span');
    this.decide.className = 'decide';
    for (const [label, action] of [
      ['Accept', onAccept],
      ['Reject', onReject],
    ]) {
      const button = document.createElement('button');
      button.type = 'button';
      button.className = label.toLowerCase();
      button.textContent = label;
      button.addEventListener('click', () => {
        this.decide.remove();
        this.decide = null;
        action();
      });
      this.decide.append(button);
    }
    this.li.dataset.waiting = 'accept';
    this.li.append(this.decide);
  }

  // The row goes, and with it the file it offered: its object URL is revoked.
  clear() {
    const link = this.li.querySelector('a.download');
    if (link) URL.revokeObjectURL(link.href);
    this.li.remove();
  }
}

// What both directions share: the channel, the state table, waking the sender's loop.
class Transfer {
  constructor(channel, partner, direction, list, label) {
    this.channel = channel;
    this.partner = partner;
    this.direction = direction;
    this.phase = null;
    this.bytes = 0;
    this.size = 0;
    this.row = new Row(list, direction, label);
    this.state = direction === 'out' ? 'sending' : 'receiving';
    this.row.li.dataset.state = this.state;
    this.row.cancel.addEventListener('click', () => this.cancel('cancelled', 'cancelled'));
    this.wakeUp = null;
    channel.binaryType = 'arraybuffer';
    channel.addEventListener('message', (event) => this.onMessage(event.data));
    channel.addEventListener('close', () => this.onClose());
    channel.addEventListener('error', (event) => console.warn('file channel', event.error));
  }

  get finished() {
    return TRANSITIONS[this.state].length === 0;
  }

  finish(state, text) {
    if (!TRANSITIONS[this.state].includes(state)) return false;
    this.state = state;
    this.row.finish(state, text);
    this.wake();
    this.release();
    closeAfterLastWord(this.channel);
    return true;
  }

  // Drops what the transfer holds; a finished row keeps only what it shows.
  release() {}

  wake() {
    const wakeUp = this.wakeUp;
    this.wakeUp = null;
    if (wakeUp) wakeUp();
  }

  // Resolves once `ready()` holds, re-checked at every event on the channel; throws
  // Finished when the transfer ends (cancelled, failed, hung up) meanwhile.
  async until(ready) {
    for (;;) {
      if (this.finished) throw new Finished();
      if (ready()) return;
      await new Promise((resolve) => {
        this.wakeUp = resolve;
      });
    }
  }

  sendText(text) {
    if (this.channel.readyState === 'open') this.channel.send(text);
  }

  // We end it: tell the other side why, then close.
  cancel(reason, text) {
    if (this.finished) return;
    this.sendText(fileMessages.cancel(reason));
    this.finish(reason === 'cancelled' ? 'cancelled' : 'failed', text);
  }

  control(data) {
    const message = parseFileControl(data);
    if (message.type !== 'invalid' && !EXPECTED[this.direction][this.phase].includes(message.type)) {
      return { type: 'invalid', why: `unexpected ${message.type}` };
    }
    return message;
  }

  onClose() {
    this.failWhy(`${this.partner} closed the transfer`);
  }

  // The channel or the call went away before the end.
  failWhy(why) {
    if (this.finished) return;
    this.finish('failed', this.direction === 'in' ? `${why}; nothing saved` : why);
  }
}

class Outgoing extends Transfer {
  constructor(channel, partner, list, file) {
    super(channel, partner, 'out', list, file.name);
    this.file = file;
    this.size = file.size;
    this.phase = 'offered';
    this.accepted = false;
    this.receipt = null;
    this.maxBuffered = 0; // the most the channel ever held: the flow control, observable
    this.row.show(0, this.size);
    this.row.outcome.textContent = `waiting for ${partner} to accept…`;
    channel.bufferedAmountLowThreshold = LOW_WATER;
    channel.addEventListener('open', () => this.wake());
    channel.addEventListener('bufferedamountlow', () => this.wake());
  }

  async run() {
    try {
      await this.until(() => this.channel.readyState === 'open');
      this.sendText(fileMessages.header(this.file.name, this.file.size));
      await this.until(() => this.accepted);
      this.phase = 'streaming';
      this.row.outcome.textContent = '';
      const hash = new Sha256();
      while (this.bytes < this.size) {
        const slice = this.file.slice(this.bytes, Math.min(this.bytes + READ_BYTES, this.size));
        const data = new Uint8Array(await slice.arrayBuffer());
        if (this.finished) return;
        if (data.length === 0) throw new Error('the file got shorter while it was being sent');
        hash.update(data);
        for (let offset = 0; offset < data.length; offset += MAX_CHUNK_BYTES) {
          await this.until(() => this.channel.bufferedAmount <= HIGH_WATER);
          this.channel.send(data.subarray(offset, offset + MAX_CHUNK_BYTES));
          this.maxBuffered = Math.max(this.maxBuffered, this.channel.bufferedAmount);
        }
        this.bytes += data.length;
        this.row.show(this.bytes, this.size);
      }
      const digest = hash.hexDigest();
      this.phase = 'ended';
      this.sendText(fileMessages.end(digest));
      this.row.outcome.textContent = `sent; waiting for ${this.partner} to check it…`;
      await this.until(() => this.receipt !== null);
      if (this.receipt === digest) {
        this.finish('done', `delivered; ${this.partner} verified its SHA-256`);
      } else {
        this.cancel('protocol-error', `${this.partner} confirmed a different SHA-256`);
      }
    } catch (err) {
      if (err instanceof Finished) return;
      console.error('sending', this.file.name, err);
      this.cancel('cancelled', `could not send: ${err.message || err}`);
    }
  }

  onMessage(data) {
    if (this.finished) return;
    const message = this.control(data);
    switch (message.type) {
      case 'accept':
        this.accepted = true;
        break;
      case 'done':
        this.receipt = message.sha256;
        break;
      case 'cancel':
        if (message.reason === 'cancelled') {
          this.finish('cancelled', `${this.partner} cancelled`);
        } else {
          this.finish('failed', `${this.partner} refused it: ${message.reason || 'no reason'}`);
        }
        break;
      default:
        this.cancel('protocol-error', `${this.partner} broke the protocol (${message.why})`);
    }
    this.wake();
  }

  release() {
    this.file = null;
    this.row.li.dataset.maxBuffered = String(this.maxBuffered);
  }
}

class Incoming extends Transfer {
  constructor(channel, partner, list) {
    super(channel, partner, 'in', list, 'incoming file…');
    this.phase = 'header';
    this.fileName = null;
    this.hash = new Sha256();
    this.parts = []; // ArrayBuffers since the last fold into a Blob
    this.partBytes = 0;
    this.blobs = [];
  }

  onMessage(data) {
    if (this.finished) return;
    if (typeof data !== 'string') {
      this.onData(data);
      return;
    }
    const message = this.control(data);
    switch (message.type) {
      case 'file':
        this.onHeader(message);
        break;
      case 'end':
        this.onEnd(message.sha256);
        break;
      case 'cancel':
        this.finish('cancelled', `${this.partner} cancelled; nothing saved`);
        break;
      default:
        this.cancel(
          this.phase === 'header' ? 'bad-header' : 'protocol-error',
          `${this.phase === 'header' ? 'bad-header' : 'protocol-error'}, nothing saved`,
        );
    }
  }

  onHeader({ name, size }) {
    this.fileName = sanitiseName(name);
    this.size = size;
    this.row.setName(this.fileName);
    this.row.show(0, size);
    if (size > MAX_RECEIVE_BYTES) {
      this.cancel(
        'too-large',
        `too-large, nothing saved (${formatBytes(size)}; the page holds ${formatBytes(MAX_RECEIVE_BYTES)})`,
      );
      return;
    }
    this.phase = 'offered';
    this.row.outcome.textContent = `${this.partner} offers this file`;
    this.row.ask(
      () => {
        if (this.finished) return;
        delete this.row.li.dataset.waiting;
        this.row.outcome.textContent = '';
        this.phase = 'streaming';
        this.sendText(fileMessages.accept());
      },
      () => this.cancel('cancelled', 'rejected, nothing saved'),
    );
  }

  onData(buffer) {
    if (this.phase !== 'streaming') {
      const why = this.phase === 'header' ? 'bad-header' : 'protocol-error';
      this.cancel(why, `${why}, nothing saved`);
      return;
    }
    const bytes = buffer instanceof ArrayBuffer ? buffer : new Uint8Array(buffer).buffer;
    this.bytes += bytes.byteLength;
    if (this.bytes > this.size) {
      this.cancel('size-mismatch', 'size-mismatch, nothing saved');
      return;
    }
    this.hash.update(bytes);
    this.parts.push(bytes);
    this.partBytes += bytes.byteLength;
    if (this.partBytes >= BLOB_PART_BYTES) this.fold();
    this.row.show(this.bytes, this.size);
  }

  fold() {
    this.blobs.push(new Blob(this.parts));
    this.parts = [];
    this.partBytes = 0;
  }

  onEnd(sha256) {
    if (this.bytes !== this.size) {
      this.cancel('size-mismatch', 'size-mismatch, nothing saved');
      return;
    }
    const digest = this.hash.hexDigest();
    if (digest !== sha256) {
      this.cancel('hash-mismatch', 'hash-mismatch, nothing saved');
      return;
    }
    this.fold();
    const blob = new Blob(this.blobs, { type: 'application/octet-stream' });
    this.sendText(fileMessages.done(digest));
    if (!this.finish('done', `SHA-256 verified (${digest.slice(0, 16)}…)`)) return;
    const link = document.createElement('a');
    link.className = 'download';
    link.href = URL.createObjectURL(blob);
    link.download = this.fileName;
    link.textContent = `Save ${this.fileName}`;
    link.dataset.sha256 = digest;
    this.row.li.dataset.sha256 = digest;
    this.row.li.append(link);
  }

  release() {
    this.parts = [];
    this.blobs = [];
  }
}

// The transfers of the current call, and the rows of past ones.
export class Transfers {
  constructor({ list, input, send }, notify) {
    this.list = list;
    this.input = input;
    this.sendButton = send;
    this.notify = notify;
    this.pc = null;
    this.partner = null;
    this.active = new Set();
    this.sendButton.addEventListener('click', () => this.sendPicked());
    this.setReady(false);
  }

  attach(pc, partner) {
    this.pc = pc;
    this.partner = partner;
  }

  // Files can go once the call's SCTP association is up (its chat channel is open).
  setReady(ready) {
    this.input.disabled = !ready;
    this.sendButton.disabled = !ready;
  }

  sendPicked() {
    if (!this.pc || this.sendButton.disabled) return;
    const files = Array.from(this.input.files || []);
    if (files.length === 0) {
      this.notify('Pick a file to send first.');
      return;
    }
    this.input.value = '';
    for (const file of files) this.send(file);
  }

  send(file) {
    const channel = this.pc.createDataChannel(FILE_LABEL, { ordered: true });
    const transfer = new Outgoing(channel, this.partner, this.list, file);
    this.track(transfer);
    transfer.run();
  }

  incoming(channel) {
    const running = [...this.active].filter((t) => t.direction === 'in' && !t.finished).length;
    if (running >= MAX_INCOMING_AT_ONCE) {
      this.notify(
        `Refused a file from ${this.partner}: ${MAX_INCOMING_AT_ONCE} transfers from them are already running (too-many).`,
      );
      const refuse = () => {
        channel.send(fileMessages.cancel('too-many'));
        closeAfterLastWord(channel);
      };
      if (channel.readyState === 'open') refuse();
      else channel.addEventListener('open', refuse, { once: true });
      return;
    }
    this.track(new Incoming(channel, this.partner, this.list));
  }

  track(transfer) {
    this.active.add(transfer);
    transfer.channel.addEventListener('close', () => this.active.delete(transfer));
  }

  // The call ended: whatever is still running failed (no close events come after pc.close()).
  detach(why) {
    for (const transfer of this.active) transfer.failWhy(why);
    this.active.clear();
    this.pc = null;
    this.partner = null;
    this.setReady(false);
  }
}
