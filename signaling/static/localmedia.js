// Our camera and microphone, asked for once at the first call: both, else either one,
// else nothing (the page still receives).

import { describeError } from './signaling.js';

const ATTEMPTS = Object.freeze([
  [['video', 'audio'], ''],
  [['video'], 'No microphone available: sending video only.'],
  [['audio'], 'No camera available: sending audio only.'],
]);

export class LocalMedia {
  constructor(video, devices, controls, notify) {
    this.video = video;
    this.devices = devices;
    this.controls = controls;
    this.notify = notify;
    this.stream = null; // Promise<MediaStream | null> once asked for
  }

  /** The stream (null without camera and microphone), asked for at the first call. */
  start() {
    this.stream ??= this.open();
    return this.stream;
  }

  async open() {
    if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
      this.notify('This page cannot use the camera here (it needs HTTPS or localhost). You can still receive calls.');
      return null;
    }
    let firstError = null;
    for (const [kinds, note] of ATTEMPTS) {
      try {
        const stream = await this.devices.getUserMedia(kinds);
        this.video.muted = true;
        this.video.srcObject = stream;
        if (note) this.notify(note);
        this.controls.mediaReady();
        this.devices.refresh(); // labels are readable now
        return stream;
      } catch (err) {
        firstError ??= err;
        console.warn('getUserMedia', kinds, err);
      }
    }
    this.notify(`No camera or microphone (${describeError(firstError)}). You can still see and hear others.`);
    return null;
  }
}
