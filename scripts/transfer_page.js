// One data-channel transfer in a Chromium page, for scripts/bench_transfer.py (page.evaluate).
// Roles: "receive" answers a Python sender's offer through the signaling server; "send"
// offers to a Python receiver; "loop" runs both ends in this page. Same wire as
// scripts/transfer_peer.py: a {"size"} header, 64 KiB binary messages, {"sha256"} back.
async ({url, login, other, size, role}) => {
  const HIGH = 4 * 1024 * 1024, LOW = 1024 * 1024, MESSAGE = 65536;
  const block = new Uint8Array(1024 * 1024);
  for (let i = 0; i < block.length; i += 65536) crypto.getRandomValues(block.subarray(i, i + 65536));
  const hex = (buf) => Array.from(new Uint8Array(buf), (b) => b.toString(16).padStart(2, '0')).join('');
  const digestOf = async (parts, total) => {
    const all = new Uint8Array(total);
    let at = 0;
    for (const p of parts) { all.set(new Uint8Array(p), at); at += p.byteLength; }
    return hex(await crypto.subtle.digest('SHA-256', all));
  };
  const sendAll = async (ch) => {
    ch.bufferedAmountLowThreshold = LOW;
    ch.send(JSON.stringify({size}));
    const parts = [];
    const started = performance.now();
    for (let sent = 0; sent < size;) {
      const n = Math.min(MESSAGE, size - sent);
      const off = sent % block.length;
      const chunk = block.slice(off, off + n);
      parts.push(chunk.buffer);
      ch.send(chunk);
      sent += n;
      if (ch.bufferedAmount > HIGH) {
        await new Promise((ok) => { ch.onbufferedamountlow = () => { ch.onbufferedamountlow = null; ok(); }; });
      }
    }
    const reply = await new Promise((ok) => { ch.onmessage = (e) => ok(JSON.parse(e.data)); });
    const seconds = (performance.now() - started) / 1000;
    return {bytes: size, seconds, intact: reply.sha256 === await digestOf(parts, size)};
  };
  const receiveAll = (ch) => new Promise((ok) => {
    ch.binaryType = 'arraybuffer';
    const parts = [];
    let expected = null, got = 0, started = null;
    ch.onmessage = async (e) => {
      if (typeof e.data === 'string') { expected = JSON.parse(e.data).size; return; }
      if (started === null) started = performance.now();
      parts.push(e.data);
      got += e.data.byteLength;
      if (got >= expected) {
        const seconds = (performance.now() - started) / 1000;
        const sha256 = await digestOf(parts, got);
        ch.send(JSON.stringify({sha256}));
        ok({bytes: got, seconds, sha256});
      }
    };
  });
  if (role === 'loop') {
    const a = new RTCPeerConnection(), b = new RTCPeerConnection();
    a.onicecandidate = (e) => e.candidate && b.addIceCandidate(e.candidate);
    b.onicecandidate = (e) => e.candidate && a.addIceCandidate(e.candidate);
    const ch = a.createDataChannel('file');
    ch.binaryType = 'arraybuffer';
    const remote = new Promise((ok) => { b.ondatachannel = (e) => ok(e.channel); });
    await a.setLocalDescription();
    await b.setRemoteDescription(a.localDescription);
    await b.setLocalDescription();
    await a.setRemoteDescription(b.localDescription);
    await new Promise((ok) => { ch.onopen = ok; });
    const receiving = receiveAll(await remote);
    const result = await sendAll(ch);
    await receiving;
    a.close(); b.close();
    return result;
  }
  const ws = new WebSocket(url);
  await new Promise((ok, fail) => { ws.onopen = ok; ws.onerror = fail; });
  const signal = (message) => ws.send(JSON.stringify(message));
  let pc = null, peerName = other;
  const held = [];
  const makePc = () => {
    pc = new RTCPeerConnection();
    pc.onicecandidate = (e) => signal({type: 'candidate', candidate: e.candidate ? e.candidate.toJSON() : null, otherUsername: peerName});
  };
  let offered = null;
  const offerArrived = new Promise((ok) => { offered = ok; });
  ws.onmessage = async (e) => {
    const m = JSON.parse(e.data);
    if (m.type === 'offer') { peerName = m.username; offered(m.offer); }
    else if (m.type === 'answer') { await pc.setRemoteDescription(m.answer); for (const c of held.splice(0)) await pc.addIceCandidate(c); }
    else if (m.type === 'candidate' && m.candidate) {
      if (pc && pc.remoteDescription) await pc.addIceCandidate(m.candidate); else held.push(m.candidate);
    }
  };
  signal({type: 'login', username: login});
  if (role === 'send') {
    makePc();
    const ch = pc.createDataChannel('file');
    ch.binaryType = 'arraybuffer';
    const opened = new Promise((ok) => { ch.onopen = ok; });
    await pc.setLocalDescription();
    signal({type: 'offer', offer: pc.localDescription.toJSON(), otherUsername: other});
    await opened;
    const result = await sendAll(ch);
    pc.close(); ws.close();
    return result;
  }
  const offer = await offerArrived;
  makePc();
  const channel = new Promise((ok) => { pc.ondatachannel = (e) => ok(e.channel); });
  await pc.setRemoteDescription(offer);
  for (const c of held.splice(0)) await pc.addIceCandidate(c);
  await pc.setLocalDescription();
  signal({type: 'answer', answer: pc.localDescription.toJSON(), otherUsername: peerName});
  const result = await receiveAll(await channel);
  await new Promise((ok) => setTimeout(ok, 500));
  pc.close(); ws.close();
  return result;
}
