// The page's device picker: camera, microphone and (where the browser can route audio)
// speaker, listed by enumerateDevices. Labels only come once the page may use the camera
// or microphone, so the lists are filled again after getUserMedia, after every switch
// and on every devicechange. A new camera or microphone mid-call goes onto the same
// sender through Controls.replace (replaceTrack): the call is never renegotiated. A
// source that is off (muted, camera off, screen shared) only remembers the choice for
// when it comes back.
//
// The choices are kept in localStorage (device ids are stable per origin) and asked for
// as `exact` at the next start (Chromium ignores an `ideal` deviceId); one that is not
// there falls back to the default, with a notice. A device that disappears mid-call
// (devicechange, or its track ends) is replaced by the default. A camera whose frames the
// browser cannot send (Chromium refuses a depth camera's Y16) is noticed mid-call and the
// previous one comes back.

const INPUTS = { video: 'videoinput', audio: 'audioinput' };
const NOUNS = { videoinput: 'Camera', audioinput: 'Microphone', audiooutput: 'Speaker' };
// The system's default devices, whatever they are now: never "not connected".
const VIRTUAL_IDS = new Set(['default', 'communications']);
const STORAGE_KEY = 'webcam-peer.devices';
// How long a new camera may take to hand its first frames to the call's sender.
const SEND_CHECK_MS = 3000;
const SEND_CHECK_STEP_MS = 250;
// Frames the camera itself must have delivered meanwhile for a still sender to mean
// "cannot be sent" (about half a second of a 20 fps camera).
const SEND_CHECK_MIN_FRAMES = 10;
// getUserMedia's refusals that mean "no such device".
const MISSING_ERRORS = new Set(['OverconstrainedError', 'NotFoundError']);
// A switch in progress holds the controls; a device change waits for it.
const RECHECK_RETRY_MS = 500;

export class DevicePicker {
  // elements: {camera, microphone, speaker, speakerField, note}; remote: the partner's
  // <video>; localStream(): the page's own MediaStream or null; controls: the page's
  // Controls (its pc() is the call's RTCPeerConnection or null); notify(text): a line
  // for the user.
  constructor(elements, remote, localStream, controls, notify) {
    this.el = elements;
    this.remote = remote;
    this.localStream = localStream;
    this.controls = controls;
    this.notify = notify;
    this.saved = loadChoices();
    // What this session asks for; a device found missing falls back to '' (the default)
    // here while the saved choice stays, for when it is plugged in again.
    this.chosen = { video: this.saved.video.id, audio: this.saved.audio.id };
    this.watched = new WeakSet();
    this.speakerMissingTold = false;
    const media = navigator.mediaDevices;
    this.listable = Boolean(media && media.enumerateDevices);
    this.routable = typeof this.remote.setSinkId === 'function';
    elements.speakerField.hidden = !this.routable;
    elements.speaker.disabled = !this.routable;
    if (!this.routable) {
      elements.note.textContent =
        "This browser cannot choose a speaker: calls play through the system's default output.";
    }
    elements.note.hidden = this.routable;
    if (!this.listable) {
      for (const select of [elements.camera, elements.microphone, elements.speaker]) {
        select.disabled = true;
      }
      return;
    }
    media.addEventListener('devicechange', () => this.recheck());
    elements.camera.addEventListener('change', () => this.choose('video', elements.camera.value));
    elements.microphone.addEventListener('change', () =>
      this.choose('audio', elements.microphone.value),
    );
    elements.speaker.addEventListener('change', () => this.chooseSpeaker(elements.speaker.value));
    controls.changed = () => this.refresh();
    this.refresh();
  }

  // A stream of ``kinds`` (['video', 'audio'] or one of them) from the chosen devices;
  // one that is not there is forgotten for this visit, the default used, and the user told.
  async getUserMedia(kinds) {
    const exactly = (id) => (id ? { deviceId: { exact: id } } : true);
    const ask = () => Object.fromEntries(kinds.map((kind) => [kind, exactly(this.chosen[kind])]));
    const missing = await this.unlisted(kinds);
    let stream;
    try {
      stream = await navigator.mediaDevices.getUserMedia(ask());
    } catch (err) {
      // Before the page may use a device the browser lists no ids: only now is it known.
      const chosen = kinds.filter((kind) => this.chosen[kind]);
      if (chosen.length === 0 || !err || !MISSING_ERRORS.has(err.name)) throw err;
      for (const kind of chosen) this.chosen[kind] = '';
      missing.push(...chosen);
      stream = await navigator.mediaDevices.getUserMedia(ask());
    }
    for (const track of stream.getTracks()) {
      this.watch(track);
      if (missing.includes(track.kind)) {
        this.notify(`${this.savedName(track.kind)} is not connected: using "${track.label}".`);
      }
    }
    return stream;
  }

  // 'Camera "name"' for the saved choice of ``kind``, as the user saw it in the list.
  savedName(kind) {
    const noun = NOUNS[INPUTS[kind]];
    const label = this.saved[kind].label;
    return label ? `${noun} "${label}"` : `The ${noun.toLowerCase()} you chose`;
  }

  // One track of ``kind``, for Controls turning a source on again.
  async openTrack(kind) {
    return (await this.getUserMedia([kind])).getTracks()[0];
  }

  // The chosen devices of ``kinds`` the browser does not list (it lists ids once the page
  // may use them): forgotten for this visit, and returned.
  async unlisted(kinds) {
    const devices = this.listable ? await this.enumerate() : null;
    if (devices === null) return [];
    const gone = [];
    for (const kind of kinds) {
      const listed = devices.filter((d) => d.kind === INPUTS[kind] && d.deviceId);
      const id = this.chosen[kind];
      const known = VIRTUAL_IDS.has(id) || listed.some((d) => d.deviceId === id);
      if (id && listed.length > 0 && !known) {
        this.chosen[kind] = '';
        gone.push(kind);
      }
    }
    return gone;
  }

  async refresh() {
    if (!this.listable) return;
    const devices = await this.enumerate();
    if (devices === null) return;
    for (const kind of Object.keys(INPUTS)) {
      const track = this.liveTrack(kind);
      if (track) this.watch(track);
    }
    fill(this.el.camera, devices, 'videoinput', this.inUse('video'));
    fill(this.el.microphone, devices, 'audioinput', this.inUse('audio'));
    if (this.routable) await this.routeSpeaker(devices);
  }

  async enumerate() {
    try {
      return await navigator.mediaDevices.enumerateDevices();
    } catch (err) {
      console.warn('enumerateDevices', err);
      return null;
    }
  }

  liveTrack(kind) {
    const stream = this.localStream();
    return stream
      ? stream.getTracks().find((t) => t.kind === kind && t.readyState === 'live')
      : undefined;
  }

  // The device our live ``kind`` track comes from, else the one chosen for it.
  inUse(kind) {
    // A shared screen is no camera: the camera list keeps the chosen one.
    if (kind === 'video' && this.controls.state.video === 'screen') return this.chosen.video;
    const track = this.liveTrack(kind);
    const settings = track && track.getSettings ? track.getSettings() : {};
    return settings.deviceId || this.chosen[kind];
  }

  // A device unplugged ends its track: look again at what is there.
  watch(track) {
    if (this.watched.has(track)) return;
    this.watched.add(track);
    track.addEventListener('ended', () => this.recheck());
  }

  async choose(kind, deviceId) {
    const stream = this.localStream();
    if (this.controls.state[kind] !== 'on' || !stream) {
      this.chosen[kind] = deviceId;
      this.save(kind, deviceId, this.el[kind === 'video' ? 'camera' : 'microphone']);
      if (stream) this.notify(`${NOUNS[INPUTS[kind]]} chosen: it is used once it is on again.`);
      return;
    }
    const previous = this.inUse(kind);
    await this.controls.run(async () => {
      const track = await this.openExactly(kind, { deviceId: { exact: deviceId } });
      await this.controls.replace(kind, track);
      if (kind === 'video' && !(await this.sending(track))) {
        const back = await this.openExactly(
          kind,
          previous ? { deviceId: { exact: previous } } : true,
        );
        await this.controls.replace(kind, back);
        this.notify(
          `${NOUNS.videoinput} "${track.label}" gives no picture this browser can send ` +
            `(a depth or infrared camera?): back to "${back.label}".`,
        );
        return;
      }
      this.chosen[kind] = deviceId;
      this.save(kind, deviceId, track);
    });
    await this.refresh();
  }

  async openExactly(kind, constraint) {
    const stream = await navigator.mediaDevices.getUserMedia({ [kind]: constraint });
    const track = stream.getTracks()[0];
    this.watch(track);
    return track;
  }

  // Whether the call's sender gets frames from ``track``. Chromium hands a camera whose
  // frames it cannot send (a depth camera's Y16) to the preview but not to the encoder:
  // its media-source frame count stands still while the track delivers frames. A camera
  // that delivers none yet is slow, not unsendable. Outside a call there is nothing to ask.
  async sending(track) {
    const pc = this.controls.pc();
    if (!pc || pc.connectionState !== 'connected') return true;
    const first = await sourceFrames(pc, track);
    if (first === null) return true;
    const delivered = () => (track.stats ? track.stats.deliveredFrames : null);
    const deliveredFirst = delivered();
    const deadline = performance.now() + SEND_CHECK_MS;
    while (performance.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, SEND_CHECK_STEP_MS));
      if (track.readyState !== 'live') return true; // its own 'ended' handling takes over
      const now = await sourceFrames(pc, track);
      if (now === null || now > first) return true;
    }
    // Without track.stats (older browsers) a camera silent for 3 s counts as unsendable.
    return deliveredFirst !== null && delivered() - deliveredFirst < SEND_CHECK_MIN_FRAMES;
  }

  // devicechange, or a device track ended: a device we use may be gone.
  async recheck() {
    if (!this.listable) return;
    if (this.controls.busy) {
      setTimeout(() => this.recheck(), RECHECK_RETRY_MS);
      return;
    }
    const devices = await this.enumerate();
    if (devices === null) return;
    for (const kind of Object.keys(INPUTS)) {
      await this.replaceIfGone(kind, devices);
    }
    await this.refresh();
  }

  async replaceIfGone(kind, devices) {
    const listed = devices.filter((d) => d.kind === INPUTS[kind] && d.deviceId);
    // Devices listed without ids: the page may not use them yet, nothing can be told.
    if (listed.length === 0 && devices.some((d) => d.kind === INPUTS[kind])) return;
    const present = (id) => listed.some((d) => d.deviceId === id);
    const noun = NOUNS[INPUTS[kind]];
    const stream = this.localStream();
    if (this.controls.state[kind] !== 'on' || !stream) {
      if (this.chosen[kind] && !present(this.chosen[kind])) {
        this.chosen[kind] = '';
        this.notify(`${this.savedName(kind)} was disconnected: the default is used.`);
      }
      return;
    }
    const track = stream.getTracks().find((t) => t.kind === kind);
    if (!track) return; // this page never had one
    const id = track.getSettings ? track.getSettings().deviceId : undefined;
    if (track.readyState === 'live' && (!id || present(id))) return;
    this.chosen[kind] = '';
    if (listed.length === 0) {
      this.notify(`${noun} "${track.label}" was disconnected, and there is no other.`);
      return;
    }
    await this.controls.run(async () => {
      const next = await this.openExactly(kind, true);
      await this.controls.replace(kind, next);
      this.notify(`${noun} "${track.label}" was disconnected: now using "${next.label}".`);
    });
  }

  async chooseSpeaker(deviceId) {
    try {
      await this.remote.setSinkId(deviceId);
      this.save('speaker', deviceId, this.el.speaker);
    } catch (err) {
      this.notify(`Could not play through that speaker: ${err && err.message ? err.message : err}`);
    }
    await this.refresh();
  }

  // The saved speaker when it is there; the default, with a notice, when it is gone.
  async routeSpeaker(devices) {
    const outputs = devices.filter((d) => d.kind === 'audiooutput' && d.deviceId);
    const present = (id) => outputs.some((d) => d.deviceId === id);
    const current = this.remote.sinkId;
    const saved = this.saved.speaker;
    try {
      if (saved.id && present(saved.id)) this.speakerMissingTold = false;
      if (current && !present(current) && outputs.length > 0) {
        const gone = this.el.speaker.selectedOptions[0];
        await this.remote.setSinkId('');
        this.speakerMissingTold = true;
        this.notify(
          `${NOUNS.audiooutput} "${gone ? gone.textContent : current}" was disconnected: ` +
            'playing through the default.',
        );
      } else if (saved.id && !current && present(saved.id)) {
        await this.remote.setSinkId(saved.id);
      } else if (saved.id && outputs.length > 0 && !present(saved.id) && !this.speakerMissingTold) {
        this.speakerMissingTold = true;
        this.notify(`${NOUNS.audiooutput} "${saved.label}" is not connected: using the default.`);
      }
    } catch (err) {
      console.warn('setSinkId', err);
    }
    fill(this.el.speaker, devices, 'audiooutput', this.remote.sinkId || 'default');
  }

  // ``source`` is the chosen <select> (its option's text) or a track (its label).
  save(kind, id, source) {
    const label =
      source instanceof HTMLSelectElement
        ? (source.selectedOptions[0] || { textContent: '' }).textContent
        : source.label;
    this.saved[kind] = { id, label };
    try {
      localStorage.setItem(STORAGE_KEY, JSON.stringify(this.saved));
    } catch (err) {
      console.warn('localStorage', err); // private mode or storage full: only this visit
    }
  }
}

// The saved choices, each {id, label} ('' for the default); anything malformed is ignored.
function loadChoices() {
  const empty = () => ({ id: '', label: '' });
  const choices = { video: empty(), audio: empty(), speaker: empty() };
  let stored = null;
  try {
    stored = JSON.parse(localStorage.getItem(STORAGE_KEY) || 'null');
  } catch (err) {
    return choices;
  }
  if (stored === null || typeof stored !== 'object') return choices;
  for (const kind of Object.keys(choices)) {
    const entry = stored[kind];
    if (entry && typeof entry.id === 'string' && typeof entry.label === 'string') {
      choices[kind] = { id: entry.id, label: entry.label };
    }
  }
  return choices;
}

// The media-source frame count of ``track`` in the call's stats, or null if not reported.
async function sourceFrames(pc, track) {
  const stats = await pc.getStats();
  let frames = null;
  stats.forEach((report) => {
    if (report.type === 'media-source' && report.trackIdentifier === track.id) {
      frames = typeof report.frames === 'number' ? report.frames : null;
    }
  });
  return frames;
}

// ``select`` lists the devices of ``kind`` (labels as text), ``selected`` picked if there.
function fill(select, devices, kind, selected) {
  const all = devices.filter((d) => d.kind === kind);
  const found = all.filter((d) => d.deviceId);
  const options = found.map((device, index) => {
    const option = document.createElement('option');
    option.value = device.deviceId;
    option.textContent = device.label || `${NOUNS[kind]} ${index + 1}`;
    return option;
  });
  if (options.length === 0) {
    const none = document.createElement('option');
    none.value = '';
    // Before the page may use a camera or microphone the browser names no device.
    const noun = NOUNS[kind].toLowerCase();
    none.textContent = all.length > 0 ? `Default ${noun}` : `No ${noun} found`;
    options.push(none);
  }
  select.replaceChildren(...options);
  if (found.some((d) => d.deviceId === selected)) select.value = selected;
  select.disabled = found.length === 0;
}
