// The page's device picker: camera, microphone and (where the browser can route audio)
// speaker, listed by enumerateDevices. Labels only come once the page may use the camera
// or microphone, so the lists are filled again after getUserMedia and on every
// devicechange. A new camera or microphone mid-call goes onto the same sender through
// Controls.replace (replaceTrack): the call is never renegotiated. A source that is off
// (muted, camera off, screen shared) only remembers the choice for when it comes back.

const INPUTS = { video: 'videoinput', audio: 'audioinput' };
const NOUNS = { videoinput: 'Camera', audioinput: 'Microphone', audiooutput: 'Speaker' };

export class DevicePicker {
  // elements: {camera, microphone, speaker, speakerField}; remote: the partner's <video>;
  // localStream(): the page's own MediaStream or null; controls: the page's Controls;
  // notify(text): a line for the user.
  constructor(elements, remote, localStream, controls, notify) {
    this.el = elements;
    this.remote = remote;
    this.localStream = localStream;
    this.controls = controls;
    this.notify = notify;
    this.chosen = { video: '', audio: '' };
    const media = navigator.mediaDevices;
    this.listable = Boolean(media && media.enumerateDevices);
    this.routable = typeof this.remote.setSinkId === 'function';
    elements.speakerField.hidden = !this.routable;
    if (!this.listable) {
      for (const select of [elements.camera, elements.microphone, elements.speaker]) {
        select.disabled = true;
      }
      return;
    }
    media.addEventListener('devicechange', () => this.refresh());
    elements.camera.addEventListener('change', () => this.choose('video', elements.camera.value));
    elements.microphone.addEventListener('change', () =>
      this.choose('audio', elements.microphone.value),
    );
    elements.speaker.addEventListener('change', () => this.chooseSpeaker(elements.speaker.value));
    this.refresh();
  }

  // What getUserMedia should ask for: the chosen device, or any.
  constraint(kind) {
    const id = this.chosen[kind];
    return id ? { deviceId: { exact: id } } : true;
  }

  async refresh() {
    if (!this.listable) return;
    let devices;
    try {
      devices = await navigator.mediaDevices.enumerateDevices();
    } catch (err) {
      console.warn('enumerateDevices', err);
      return;
    }
    fill(this.el.camera, devices, 'videoinput', this.inUse('video'));
    fill(this.el.microphone, devices, 'audioinput', this.inUse('audio'));
    if (this.routable) fill(this.el.speaker, devices, 'audiooutput', this.remote.sinkId || 'default');
  }

  // The device our live ``kind`` track comes from, else the one chosen for it.
  inUse(kind) {
    const stream = this.localStream();
    const track = stream
      ? stream.getTracks().find((t) => t.kind === kind && t.readyState === 'live')
      : undefined;
    const settings = track && track.getSettings ? track.getSettings() : {};
    // A shared screen is no camera: the camera list keeps the chosen one.
    if (kind === 'video' && this.controls.state.video === 'screen') return this.chosen.video;
    return settings.deviceId || this.chosen[kind];
  }

  async choose(kind, deviceId) {
    this.chosen[kind] = deviceId;
    if (this.controls.state[kind] !== 'on' || !this.localStream()) {
      this.notify(`${NOUNS[INPUTS[kind]]} chosen: it is used once it is on again.`);
      return;
    }
    await this.controls.run(async () => {
      const stream = await navigator.mediaDevices.getUserMedia({ [kind]: this.constraint(kind) });
      await this.controls.replace(kind, stream.getTracks()[0]);
    });
    await this.refresh();
  }

  async chooseSpeaker(deviceId) {
    try {
      await this.remote.setSinkId(deviceId);
    } catch (err) {
      this.notify(`Could not play through that speaker: ${err && err.message ? err.message : err}`);
    }
    await this.refresh();
  }
}

// ``select`` lists the devices of ``kind`` (labels as text), ``selected`` picked if there.
function fill(select, devices, kind, selected) {
  const found = devices.filter((d) => d.kind === kind && d.deviceId);
  const options = found.map((device, index) => {
    const option = document.createElement('option');
    option.value = device.deviceId;
    option.textContent = device.label || `${NOUNS[kind]} ${index + 1}`;
    return option;
  });
  if (options.length === 0) {
    const none = document.createElement('option');
    none.value = '';
    none.textContent = `No ${NOUNS[kind].toLowerCase()} found`;
    options.push(none);
  }
  select.replaceChildren(...options);
  if (found.some((d) => d.deviceId === selected)) select.value = selected;
  select.disabled = found.length === 0;
}
