// The chat box: one `chat` data channel per call (docs/datachannels.md). The history
// stays on the page after a call so nothing said is lost; a new call starts a new one.

import { chatLineProblem, chatMessage, parseChat } from './wire.js';

export class Chat {
  constructor({ log, form, input, send }, onReady) {
    this.log = log;
    this.form = form;
    this.input = input;
    this.sendButton = send;
    this.onReady = onReady; // told whether the call's SCTP association is usable
    this.channel = null;
    this.partner = null;
    form.addEventListener('submit', (event) => {
      event.preventDefault();
      this.sendTyped();
    });
    this.setOpen(false);
  }

  setOpen(open) {
    this.input.disabled = !open;
    this.sendButton.disabled = !open;
    this.onReady(open);
  }

  // A new call's channel, ours (we called) or theirs (from ondatachannel).
  attach(channel, partner) {
    this.detach();
    this.channel = channel;
    this.partner = partner;
    this.log.replaceChildren();
    const live = () => this.channel === channel;
    channel.addEventListener('open', () => {
      if (!live()) return;
      this.setOpen(true);
      this.line('system', `Chat with ${partner} is open.`);
    });
    channel.addEventListener('close', () => {
      if (!live()) return;
      this.channel = null;
      this.setOpen(false);
      this.line('system', `Chat with ${partner} closed.`);
    });
    channel.addEventListener('message', (event) => {
      if (live()) this.receive(event.data);
    });
    if (channel.readyState === 'open') this.setOpen(true);
  }

  // The call ended (pc.close() fires no close event on its channels).
  detach() {
    const channel = this.channel;
    if (channel === null) return;
    this.channel = null;
    this.setOpen(false);
    if (channel.readyState !== 'closed') channel.close();
    this.line('system', `Chat with ${this.partner} closed.`);
  }

  sendTyped() {
    const channel = this.channel;
    if (channel === null || channel.readyState !== 'open') return;
    const text = this.input.value;
    if (text === '') return;
    const problem = chatLineProblem(text);
    if (problem !== null) {
      // What was typed stays in the box, to shorten.
      this.line('system', `Not sent: ${problem}.`, 'refused');
      return;
    }
    channel.send(chatMessage(text));
    this.line('me', text);
    this.input.value = '';
  }

  receive(data) {
    const message = parseChat(data);
    if (message.kind === 'chat') {
      this.line('them', message.text);
    } else if (message.kind === 'refused') {
      const what = message.why === 'oversize' ? 'an oversize' : `a malformed (${message.why})`;
      this.line(
        'system',
        `refused ${what} chat message from ${this.partner} (${message.bytes} bytes)`,
        'refused',
      );
    }
  }

  line(from, text, kind = '') {
    const li = document.createElement('li');
    li.dataset.from = from;
    if (kind) li.dataset.kind = kind;
    if (from !== 'system') {
      const who = document.createElement('span');
      who.className = 'who';
      who.textContent = from === 'me' ? 'You' : this.partner;
      li.append(who);
    }
    const body = document.createElement('span');
    body.className = 'text';
    body.textContent = text;
    li.append(body);
    this.log.append(li);
    this.log.scrollTop = this.log.scrollHeight;
  }
}
