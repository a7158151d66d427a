// One call's RTCPeerConnection and what belongs to it: candidates buffered on both
// sides until the descriptions allow them, the remote stream, the connection's state
// by the LINK table, and the recovery budget it shares with the calls that replace it.

import { LINK, Link, step } from './callstate.js';
import { Recovery } from './recovery.js';

/** Candidates that come too early wait here until release(). Pure. */
export class CandidateBuffer {
  constructor() {
    this.pending = [];
    this.ready = false;
  }

  /** Keeps ``candidate`` if it is too early; true when it was kept. */
  hold(candidate) {
    if (this.ready) return false;
    this.pending.push(candidate);
    return true;
  }

  release() {
    this.ready = true;
    return this.pending.splice(0);
  }
}

export class PageCall {
  // events: {candidate(call, candidateOrNull), track(call, track), link(call, actions)}
  constructor(partner, iceServers, { dialled, recovery = null }, events) {
    this.partner = partner;
    this.pc = new RTCPeerConnection({ iceServers });
    this.dialled = dialled; // we sent the first offer: the side that re-offers after a failure
    this.recovery = recovery ?? new Recovery(dialled);
    this.recovering = recovery !== null; // it re-establishes a failed call
    this.remoteCandidates = new CandidateBuffer(); // until the remote description is set
    this.localCandidates = new CandidateBuffer(); // until our offer or answer is out
    this.sentEnd = false;
    this.remoteStream = new MediaStream();
    this.awaitingOffer = false; // recovering, and the partner's fresh offer has not come yet
    this.mediaAdded = false; // our tracks are on it (a later offer renegotiates)
    this.everConnected = false;
    this.link = Link.NEW;
    this.timers = new Map(); // name -> timeout id
    this.heldOffer = null; // a fresh offer judged by this connection's health
    this.pc.addEventListener('icecandidate', (event) => {
      const cand = event.candidate;
      if (cand && cand.candidate) {
        events.candidate(this, cand.toJSON());
      } else if (!this.sentEnd) {
        this.sentEnd = true;
        events.candidate(this, null);
      }
    });
    this.pc.addEventListener('track', (event) => events.track(this, event.track));
    this.pc.addEventListener('connectionstatechange', () => this.linkEvent(this.pc.connectionState, events));
  }

  linkEvent(event, events) {
    let move;
    try {
      move = step(LINK, this.link, event);
    } catch (err) {
      console.warn(`call with ${this.partner}:`, err.message);
      return;
    }
    this.link = move.next;
    if (this.link === Link.CONNECTED) this.everConnected = true;
    events.link(this, move.actions);
  }

  startTimer(name, ms, fire) {
    this.stopTimer(name);
    this.timers.set(
      name,
      setTimeout(() => {
        this.timers.delete(name);
        fire();
      }, ms),
    );
  }

  stopTimer(name) {
    if (!this.timers.has(name)) return false;
    clearTimeout(this.timers.get(name));
    this.timers.delete(name);
    return true;
  }

  /** Closes the connection here, without telling anybody. */
  close() {
    for (const name of [...this.timers.keys()]) this.stopTimer(name);
    try {
      this.pc.close();
    } catch (err) {
      console.warn('closing the peer connection', err);
    }
  }

  /** Our tracks on the connection; the kinds we send. */
  addLocalMedia(stream) {
    this.mediaAdded = true;
    const kinds = new Set();
    for (const track of stream ? stream.getTracks() : []) {
      this.pc.addTrack(track, stream);
      kinds.add(track.kind);
    }
    return kinds;
  }

  async addRemoteCandidate(candidate) {
    try {
      // null: the end of candidates
      await (candidate === null ? this.pc.addIceCandidate() : this.pc.addIceCandidate(candidate));
    } catch (err) {
      // A bad or late candidate must not end the call; others may still work.
      console.warn('addIceCandidate failed', candidate, err);
    }
  }
}
