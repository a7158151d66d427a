// Mute, camera off and screen sharing on the page, and the partner's state shown over
// their picture. Turning a source off stops its track (the camera light goes off) and
// takes it off the call's sender with replaceTrack(null); on asks for the device again
// and puts the new track on the same sender: the call is never renegotiated. The state
// goes to the partner on the chat channel (mediastate.js); a partner without data
// channels (the tutorial's page) simply gets no word of it.

import { describeMediaState, mediaStateMessage, parseMediaState } from './mediastate.js';

export class Controls {
  // elements: {mute, camera, share, remoteState}; media(): Promise<MediaStream|null>;
  // pc(): the call's RTCPeerConnection or null; notify(text): a line for the user;
  // open(kind): a new track of that kind, from the device picker's choice (devices.js).
  constructor(elements, media, pc, notify, open = openDefault) {
    this.el = elements;
    this.open = open;
    this.media = media;
    this.pc = pc;
    this.notify = notify;
    this.state = { audio: 'on', video: 'on' };
    this.channel = null;
    this.busy = false;
    this.changed = () => {}; // after every switch (the device picker lists again)
    elements.mute.addEventListener('click', () => this.run(() => this.toggleMicrophone()));
    elements.camera.addEventListener('click', () => this.run(() => this.toggleCamera()));
    elements.share.addEventListener('click', () => this.run(() => this.toggleShare()));
    this.render();
  }

  // The page's own devices are known (after the first login).
  async mediaReady() {
    const stream = await this.media();
    this.kinds = new Set(stream ? stream.getTracks().map((track) => track.kind) : []);
    this.render();
  }

  // A call's chat channel: our state goes out when it opens, theirs comes in on it.
  attachChannel(channel) {
    this.channel = channel;
    const send = () => {
      if (this.channel === channel) this.send();
    };
    channel.addEventListener('open', send);
    channel.addEventListener('message', (event) => {
      if (this.channel !== channel) return;
      const state = parseMediaState(event.data);
      if (state !== null) this.showRemote(state);
    });
    if (channel.readyState === 'open') send();
  }

  callEnded() {
    this.channel = null;
    this.showRemote({ audio: 'on', video: 'on' });
  }

  showRemote(state) {
    const text = describeMediaState(state);
    this.el.remoteState.textContent = text;
    this.el.remoteState.hidden = text === '';
    this.el.remoteState.dataset.audio = state.audio;
    this.el.remoteState.dataset.video = state.video;
  }

  send() {
    const channel = this.channel;
    if (channel !== null && channel.readyState === 'open') channel.send(mediaStateMessage(this.state));
  }

  async run(action) {
    if (this.busy) return;
    this.busy = true;
    this.render();
    try {
      await action();
    } catch (err) {
      this.notify(`Could not switch: ${err && err.message ? err.message : String(err)}`);
    } finally {
      this.busy = false;
      this.render();
      this.send();
      this.changed();
    }
  }

  async toggleMicrophone() {
    if (this.state.audio === 'on') {
      await this.replace('audio', null);
      this.state.audio = 'muted';
    } else {
      await this.replace('audio', await this.open('audio'));
      this.state.audio = 'on';
    }
  }

  async toggleCamera() {
    if (this.state.video === 'off') {
      await this.useCamera();
    } else {
      await this.replace('video', null);
      this.state.video = 'off';
    }
  }

  async toggleShare() {
    if (this.state.video === 'screen') {
      await this.useCamera();
      return;
    }
    const screen = await navigator.mediaDevices.getDisplayMedia({ video: true, audio: false });
    const track = screen.getVideoTracks()[0];
    // The browser's own "Stop sharing" ends the track: back to the camera then.
    track.addEventListener('ended', () => {
      if (this.current('video') === track) this.run(() => this.useCamera());
    });
    await this.replace('video', track);
    this.state.video = 'screen';
  }

  async useCamera() {
    await this.replace('video', await this.open('video'));
    this.state.video = 'on';
  }

  current(kind) {
    return this.stream ? this.stream.getTracks().find((track) => track.kind === kind) : undefined;
  }

  // ``track`` (or nothing) in place of our ``kind`` track: on the call's sender, in the
  // local stream (the preview, and what the next call sends). The old track is stopped.
  async replace(kind, track) {
    const stream = await this.media();
    if (!stream) throw new Error('no camera or microphone on this page');
    this.stream = stream;
    const old = this.current(kind);
    const pc = this.pc();
    if (pc) {
      const transceiver = pc
        .getTransceivers()
        .find((t) => t.receiver.track.kind === kind && t.sender && !t.stopped);
      if (transceiver) await transceiver.sender.replaceTrack(track);
    }
    if (old) {
      old.stop();
      // A stopped track stays in the stream while the source is off, so the next call
      // still has a sender for this kind to put the device back on.
      if (track !== null) stream.removeTrack(old);
    }
    if (track !== null) stream.addTrack(track);
  }

  render() {
    const has = (kind) => this.kinds !== undefined && this.kinds.has(kind);
    const { mute, camera, share } = this.el;
    mute.disabled = this.busy || !has('audio');
    camera.disabled = this.busy || !has('video');
    share.disabled =
      this.busy || !has('video') || !navigator.mediaDevices || !navigator.mediaDevices.getDisplayMedia;
    mute.textContent = this.state.audio === 'muted' ? 'Unmute' : 'Mute';
    mute.setAttribute('aria-pressed', String(this.state.audio === 'muted'));
    camera.textContent = this.state.video === 'off' ? 'Camera on' : 'Camera off';
    camera.setAttribute('aria-pressed', String(this.state.video === 'off'));
    share.textContent = this.state.video === 'screen' ? 'Stop sharing' : 'Share screen';
    share.setAttribute('aria-pressed', String(this.state.video === 'screen'));
    document.body.dataset.audio = this.state.audio;
    document.body.dataset.video = this.state.video;
  }
}

async function openDefault(kind) {
  const stream = await navigator.mediaDevices.getUserMedia({ [kind]: true });
  return stream.getTracks()[0];
}
