// A call's data channels: the caller opens `chat` before its offer, so the offer has an
// SCTP m-line; everything the other side opens arrives through `datachannel` and goes to
// the chat box or to a new incoming transfer by its label. app.js only says when a call
// starts, what the remote description was, and when the call ends.

import { Chat } from './chat.js';
import { Transfers } from './transfer.js';
import { CHAT_LABEL, FILE_LABEL } from './wire.js';

// An m=application line with a port: the other side took the data channels.
const HAS_DATA = /^m=application [1-9]/m;

export class CallData {
  constructor(chatElements, transferElements, notify) {
    this.transfers = new Transfers(transferElements, notify);
    this.chat = new Chat(chatElements, (ready) => this.transfers.setReady(ready));
    this.notify = notify;
    this.pc = null;
    this.partner = null;
    this.chatListeners = []; // (channel) => void, for others that speak on the chat channel
  }

  attachChat(channel, partner) {
    this.chat.attach(channel, partner);
    for (const listener of this.chatListeners) listener(channel);
  }

  start(pc, partner, { caller }) {
    this.end('');
    this.pc = pc;
    this.partner = partner;
    this.transfers.attach(pc, partner);
    if (caller) this.attachChat(pc.createDataChannel(CHAT_LABEL, { ordered: true }), partner);
    pc.addEventListener('datachannel', (event) => {
      if (this.pc !== pc) return;
      const channel = event.channel;
      if (channel.label === CHAT_LABEL) {
        this.attachChat(channel, partner);
      } else if (channel.label === FILE_LABEL) {
        this.transfers.incoming(channel);
      } else {
        console.debug('closing a data channel with an unknown label', channel.label);
        channel.close();
      }
    });
  }

  // Once per call: a peer without data channels (the tutorial's page) still gets its call.
  remoteDescription(sdp) {
    if (this.pc !== null && !HAS_DATA.test(sdp)) {
      this.notify(`${this.partner}'s side has no chat or file transfer; video and sound only.`);
    }
  }

  end(why) {
    if (this.pc === null) return;
    this.pc = null;
    this.chat.detach();
    this.transfers.detach(why);
  }
}
