// Calls with one partner at a time: dialling, answering after consent, the server's
// answers and closes, hanging up, and re-establishing a failed media connection once by
// the rules of recovery.js. The shell of the tables in callstate.js and recovery.js.

import { PageCall } from './call.js';
import { PageState } from './callstate.js';
import { shown } from './consent.js';
import {
  CONNECTION_HEALTHY,
  DISCONNECTED_IS_FAILED_MS,
  Ending,
  FRESH_OFFER_HOLD_MS,
  RECOVERY_TIMEOUT_MS,
  Step,
  Verdict,
  failureText,
  iceUfrag,
  isFreshNegotiation,
  judgeFreshOffer,
  mediaFailing,
} from './recovery.js';
import { describeError } from './signaling.js';

// Thrown by settled() when the call it waited for is no longer the page's call.
class Superseded extends Error {}

const CLOSE_TEXT = Object.freeze({
  busy: (name) => `${name} is busy.`,
  declined: (name) => `${name} declined the call.`,
});

export class Conversation {
  // parts: {view, page, session, login, media, remote, talk, controls, consent, callee}
  constructor(parts) {
    Object.assign(this, parts);
    this.call = null;
    this.unsentCloses = []; // hang-ups made while the server was away
    this.callEvents = {
      candidate: (call, candidate) => this.ifCurrent(call, () => this.localCandidate(call, candidate)),
      track: (call, track) => this.ifCurrent(call, () => this.remote.addTrack(call.remoteStream, track)),
      link: (call, actions) => this.ifCurrent(call, () => this.linkActions(call, actions)),
    };
  }

  ifCurrent(call, action) {
    if (this.call === call) action();
  }

  /** ``promise``'s value, or Superseded when the call ended or was replaced meanwhile. */
  async settled(call, promise) {
    const value = await promise;
    if (this.call !== call) throw new Superseded();
    return value;
  }

  send(message) {
    return this.session.send(message);
  }

  newCall(partner, options) {
    const call = new PageCall(partner, this.login.iceServers, options, this.callEvents);
    this.call = call;
    this.remote.show(partner);
    // The caller's chat channel must exist before createOffer.
    this.talk.start(call.pc, partner, { caller: call.dialled });
    return call;
  }

  // ---- dialling ---------------------------------------------------------------------------

  async dial() {
    this.view.clearError();
    if (this.page.state !== PageState.IDLE) return;
    const target = this.callee.value.trim();
    if (!target) return this.view.showError('Enter the username of the person to call.');
    if (target === this.login.username) return this.view.showError('You cannot call yourself.');
    const call = this.newCall(target, { dialled: true });
    this.page.fire('dial');
    this.view.setStatus(`Calling ${target}…`);
    try {
      await this.offerTo(call);
    } catch (err) {
      if (this.call !== call) return;
      this.endCall();
      this.view.showError(`Could not call ${target}: ${describeError(err)}`);
      this.view.setStatus('Ready.');
    }
  }

  // Our media on the call's connection, then an offer to its partner.
  async offerTo(call) {
    const kinds = call.addLocalMedia(await this.settled(call, this.media.start()));
    // Still receive what we cannot send.
    for (const kind of ['audio', 'video']) {
      if (!kinds.has(kind)) call.pc.addTransceiver(kind, { direction: 'recvonly' });
    }
    const offer = await this.settled(call, call.pc.createOffer());
    await this.settled(call, call.pc.setLocalDescription(offer));
    const sdp = call.pc.localDescription.sdp;
    if (!this.send({ type: 'offer', offer: { type: 'offer', sdp }, otherUsername: call.partner })) {
      throw new Error('not connected to the server');
    }
    this.descriptionSent(call);
  }

  // ---- candidates ---------------------------------------------------------------------------

  localCandidate(call, candidate) {
    if (!call.localCandidates.hold(candidate)) this.sendCandidate(call, candidate);
  }

  sendCandidate(call, candidate) {
    this.send({ type: 'candidate', candidate, otherUsername: call.partner });
  }

  descriptionSent(call) {
    for (const candidate of call.localCandidates.release()) this.sendCandidate(call, candidate);
  }

  async remoteDescriptionSet(call) {
    for (const candidate of call.remoteCandidates.release()) {
      await this.settled(call, call.addRemoteCandidate(candidate));
    }
  }

  async candidate({ from, candidate }) {
    const call = this.call;
    if (!call && this.consent.candidate(from, candidate)) return;
    if (!call || call.partner !== from) return;
    const held = call.heldOffer;
    if (held !== null && candidate !== null && candidate.usernameFragment === held.ufrag) {
      held.candidates.push({ from, candidate });
      return;
    }
    if (!call.remoteCandidates.hold(candidate)) await call.addRemoteCandidate(candidate);
  }

  // ---- answering ----------------------------------------------------------------------------

  async offer(message) {
    const { from, sdp } = message;
    if (this.page.state === PageState.LOGGED_OUT) return;
    let call = this.call;
    if (call && call.partner !== from) {
      // The server does not relay offers to a user in a call.
      console.warn('offer from', from, 'while in a call with', call.partner);
      return;
    }
    if (call && !call.awaitingOffer && isFreshNegotiation(call.pc.remoteDescription?.sdp ?? null, sdp)) {
      // The partner starts over on a new connection, which replaces ours only once ours
      // fails too: whoever sends offers in their name must not get the call.
      if (!mediaFailing(call.pc.connectionState, call.pc.iceConnectionState)) {
        this.holdFreshOffer(call, message);
        return;
      }
      if (call.recovery.nextStep(Ending.REPLACED, { signalingUp: true }) === Step.END) return;
      this.view.showError(`The media connection with ${from} failed; reconnecting the call (1 attempt)…`);
      call = this.replaceCall(call);
    }
    const renegotiation = call !== null && call.mediaAdded;
    if (call) call.awaitingOffer = false;
    if (!call) {
      if (!(await this.askToAnswer(from))) return;
      this.view.clearError();
      call = this.newCall(from, { dialled: false });
      for (const early of this.consent.takeCandidates()) call.remoteCandidates.hold(early);
      this.page.fire('answering');
      this.view.setStatus(`Answering ${shown(from)}…`);
    }
    try {
      // A glare (we were calling them too) rolls our offer back implicitly.
      await this.settled(call, call.pc.setRemoteDescription({ type: 'offer', sdp }));
      if (!renegotiation) this.talk.remoteDescription(sdp);
      await this.remoteDescriptionSet(call);
      if (!renegotiation) call.addLocalMedia(await this.settled(call, this.media.start()));
      const answer = await this.settled(call, call.pc.createAnswer());
      await this.settled(call, call.pc.setLocalDescription(answer));
      const local = call.pc.localDescription.sdp;
      this.send({ type: 'answer', answer: { type: 'answer', sdp: local }, otherUsername: from });
      this.descriptionSent(call);
      this.page.fire('answered');
      if (call.pc.connectionState !== 'connected') this.view.setStatus(`In a call with ${from}; connecting…`);
    } catch (err) {
      if (this.call !== call) return;
      this.view.showError(`Could not answer ${from}: ${describeError(err)}`);
      this.hangUp(`Call with ${from} failed.`);
    }
  }

  // Accept or Decline before anything of ours (connection, camera, microphone) is made
  // for a caller; true to answer.
  async askToAnswer(from) {
    if (this.consent.caller !== null) {
      // Another call already rings here (the server normally says busy for us).
      if (this.consent.caller !== from) this.send({ type: 'close', otherUsername: from, reason: 'busy' });
      return false;
    }
    if (this.page.state !== PageState.IDLE) return false;
    const name = shown(from);
    this.view.setStatus(`${name} is calling you.`);
    const outcome = await this.consent.ask(from);
    if (outcome === 'accept' && this.page.state === PageState.IDLE && this.call === null) return true;
    if (outcome === 'withdrawn') {
      this.view.setStatus(`${name} hung up before the call was answered.`);
    } else {
      this.send({ type: 'close', otherUsername: from, reason: 'declined' });
      this.view.setStatus(outcome === 'timeout' ? `Missed a call from ${name}.` : `Declined the call from ${name}.`);
    }
    return false;
  }

  async answer({ from, sdp }) {
    const call = this.call;
    if (!call || call.partner !== from) return;
    if (call.pc.signalingState !== 'have-local-offer') {
      console.warn('answer in signaling state', call.pc.signalingState);
      return;
    }
    try {
      await this.settled(call, call.pc.setRemoteDescription({ type: 'answer', sdp }));
      this.talk.remoteDescription(sdp);
      this.page.fire('answered');
      if (call.pc.connectionState !== 'connected') this.view.setStatus(`${call.partner} answered; connecting…`);
      await this.remoteDescriptionSet(call);
    } catch (err) {
      if (this.call !== call) return;
      this.view.showError(`Bad answer from ${call.partner}: ${describeError(err)}`);
      this.hangUp(`Call with ${call.partner} failed.`);
    }
  }

  // ---- the end of a call ------------------------------------------------------------------

  close({ from, reason }) {
    if (!this.call && this.consent.withdraw(from)) return;
    const call = this.call;
    if (!call || call.partner !== from) return;
    const dialling = this.page.state === PageState.CALLING;
    this.endCall();
    if (dialling && Object.hasOwn(CLOSE_TEXT, reason)) {
      const text = CLOSE_TEXT[reason](from);
      this.view.showError(text);
      this.view.setStatus(text);
    } else if (reason === CONNECTION_HEALTHY) {
      this.view.setStatus(`${from} refused the new connection: theirs still worked. The call ended.`);
    } else if (reason === 'disconnected') {
      this.view.setStatus(`${from} disconnected; the call ended.`);
    } else {
      this.view.setStatus(`${from} hung up.`);
    }
  }

  serverError({ reason, request, text }) {
    if (request === 'close') {
      // A hang-up the partner cannot receive (gone, or no longer in the call): the call
      // has ended here already; nothing the user can act on.
      console.debug('close not delivered', reason);
      return;
    }
    if (reason === 'not-in-call' && request === 'candidate') {
      console.debug('a candidate that crossed a hang-up refused'); // nothing to act on
      return;
    }
    const call = this.call;
    if (call && this.page.state === PageState.CALLING && (request === 'offer' || !request)) {
      this.endCall();
      this.view.showError(`Could not call ${call.partner}: ${text}`);
      this.view.setStatus('Ready.');
      return;
    }
    this.view.showError(text);
  }

  // Ends the call here, without telling anybody.
  endCall() {
    const call = this.call;
    if (!call) return;
    this.call = null;
    this.talk.end(`the call with ${call.partner} ended`);
    this.controls.callEnded();
    call.close();
    for (const track of call.remoteStream.getTracks()) track.stop();
    this.remote.clear();
    this.page.fire(this.session.open && this.login.username !== null ? 'call-ended' : 'call-ended-offline');
  }

  // Ends the call and tells the partner.
  hangUp(statusText) {
    const call = this.call;
    if (!call) return;
    if (!this.send({ type: 'close', otherUsername: call.partner })) {
      // The server is away: the partner hears it once we are logged in again.
      this.unsentCloses.push(call.partner);
    }
    this.endCall();
    this.view.setStatus(statusText ?? `Call with ${call.partner} ended.`);
  }

  loggedIn() {
    for (const partner of this.unsentCloses.splice(0)) this.send({ type: 'close', otherUsername: partner });
  }

  // ---- the media connection's state (the LINK table's actions) ------------------------

  linkActions(call, actions) {
    const partner = call.partner;
    const run = {
      'stop-disconnect-timer': () => call.stopTimer('disconnected'),
      connected: () => {
        if (call.recovering && call.stopTimer('recovery')) {
          this.view.clearError();
          this.view.setStatus(`Call with ${partner} re-established.`);
        } else {
          this.view.setStatus(`In a call with ${partner}.`);
        }
      },
      interrupted: () => this.view.setStatus(`Connection to ${partner} interrupted; waiting for it to recover…`),
      'start-disconnect-timer': () =>
        call.startTimer('disconnected', DISCONNECTED_IS_FAILED_MS, () =>
          call.linkEvent('disconnect-timeout', this.callEvents),
        ),
      'media-failed': () => this.mediaFailed(call),
      'take-held-offer': () => this.takeHeldOffer(call),
    };
    for (const action of actions) run[action]();
  }

  // ---- a failed media connection: re-established once (recovery.js) --------------------

  mediaFailed(call) {
    const partner = call.partner;
    const ending = call.everConnected ? Ending.MEDIA_FAILED : Ending.OTHER;
    const next = call.recovery.nextStep(ending, { signalingUp: this.session.open });
    if (next === Step.END) {
      this.hangUp(`Call with ${partner} failed.`);
      this.view.showError(failureText(partner, call));
      return;
    }
    this.view.showError(`The media connection with ${partner} failed; reconnecting the call (1 attempt)…`);
    this.view.setStatus(`Reconnecting the call with ${partner}…`);
    const replacement = this.replaceCall(call);
    if (next === Step.REOFFER) {
      this.offerTo(replacement).catch((err) => this.giveUp(replacement, describeError(err)));
    } else {
      replacement.awaitingOffer = true; // only the side that dialled re-offers: no glare
    }
  }

  // A new RTCPeerConnection (new ICE credentials) in place of ``call``, which is closed
  // without telling anybody.
  replaceCall(call) {
    call.close();
    const next = this.newCall(call.partner, { dialled: call.dialled, recovery: call.recovery });
    next.startTimer('recovery', RECOVERY_TIMEOUT_MS, () => this.giveUp(next, 'timed out'));
    return next;
  }

  giveUp(call, why) {
    if (this.call !== call) return;
    this.hangUp(`Call with ${call.partner} failed.`);
    this.view.showError(`Could not re-establish the call with ${call.partner} (${why}); call ended.`);
  }

  // A fresh offer while our connection works: kept (with its candidates) until the
  // connection falters, then taken; refused with a close saying why if it never does.
  holdFreshOffer(call, message) {
    if (call.heldOffer !== null) return; // one at a time
    call.heldOffer = { message, ufrag: iceUfrag(message.sdp), candidates: [] };
    call.startTimer('held-offer', FRESH_OFFER_HOLD_MS, () => {
      const failing = mediaFailing(call.pc.connectionState, call.pc.iceConnectionState);
      if (judgeFreshOffer({ failing, heldMs: FRESH_OFFER_HOLD_MS }) === Verdict.TAKE) this.takeHeldOffer(call);
      else this.refuseHeldOffer(call);
    });
  }

  takeHeldOffer(call) {
    const held = call.heldOffer;
    if (held === null) return;
    call.stopTimer('held-offer');
    call.heldOffer = null;
    const current = this.call;
    // The side that dialled re-offers itself; a call that ended takes nothing.
    if (call.dialled || current === null || current.partner !== call.partner) return;
    this.offer(held.message).catch((err) => console.warn('taking the fresh offer', err));
    for (const candidate of held.candidates) {
      this.candidate(candidate).catch((err) => console.warn('its candidate', err));
    }
  }

  refuseHeldOffer(call) {
    call.heldOffer = null;
    if (this.call !== call) return;
    this.send({ type: 'close', otherUsername: call.partner, reason: CONNECTION_HEALTHY });
    this.view.showNotice(
      `Refused a new connection from ${shown(call.partner)}: this call's connection still ` +
        'works, so the call goes on.',
    );
  }
}
