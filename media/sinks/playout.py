"""Between the network and the speaker: audio arrives in bursts, the device takes it steadily.

Decoded audio comes when packets come: 20 ms at a time, late, in bursts after a
stall, sometimes not at all. A sound card plays at its own steady pace and, when
nobody has written in time, plays silence on its own. That silence reaches the
microphone but never reaches the echo canceller, so every such underrun shifts the
echo in time against the far end the canceller was given, and it has to find the
echo again (hundreds of milliseconds of audible echo each time, measured on a real
sound server).

:class:`PlayoutBuffer` takes the bursts and hands the device exactly what it asks
for, every time: the audio in order, or silence while there is none. The speaker
gives the echo canceller exactly these blocks, so what it is told was played and
what was played are the same samples. Too much audio waiting (after a stall, or a
sender whose clock runs fast) is dropped from the oldest end, keeping the delay
bounded. No device and no thread here: the speaker drives it.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

Samples = npt.NDArray[np.int16]


@dataclass
class PlayoutCounters:
    """In samples: what was played, what was silence for want of audio, what was dropped."""

    played: int = 0
    filled: int = 0  # silence played while audio was missing (after the first arrived)
    dropped: int = 0  # audio that arrived while too much was already waiting
    gaps: int = 0  # times the audio ran out mid-call


class PlayoutBuffer:
    """Audio waiting for the device.

    ``prebuffer`` samples must be waiting before playing starts, and again after
    the audio ran out: a margin for the next packet's jitter. More than ``limit``
    waiting drops the oldest until ``prebuffer`` are left.
    """

    def __init__(self, prebuffer: int, limit: int) -> None:
        if not 0 <= prebuffer < limit:
            raise ValueError(f"playout needs 0 <= prebuffer < limit, not {prebuffer}, {limit}")
        self.prebuffer = prebuffer
        self.limit = limit
        self._chunks: deque[Samples] = deque()
        self._waiting = 0
        self._started = False  # something has arrived since the call began
        self._playing = False  # the prebuffer is full; audio flows
        self.counters = PlayoutCounters()

    @property
    def waiting(self) -> int:
        return self._waiting

    def push(self, samples: Samples) -> None:
        """Decoded audio, in order; any length."""
        if samples.size == 0:
            return
        self._chunks.append(samples.reshape(-1).astype(np.int16, copy=False))
        self._waiting += samples.size
        self._started = True
        if self._waiting > self.limit:
            self._discard(self._waiting - self.prebuffer)
        if self._waiting >= self.prebuffer:
            self._playing = True

    def pull(self, count: int) -> Samples:
        """Exactly ``count`` samples for the device: audio, or silence where there is none."""
        out = np.zeros(count, dtype=np.int16)
        taken = self._take_into(out) if self._playing else 0
        if taken < count and self._started:
            self.counters.filled += count - taken
            if self._playing:
                self.counters.gaps += 1
                self._playing = self.prebuffer == 0
        self.counters.played += count
        return out

    def _take_into(self, out: Samples) -> int:
        taken = 0
        while taken < out.size and self._chunks:
            chunk = self._chunks[0]
            n = min(chunk.size, out.size - taken)
            out[taken : taken + n] = chunk[:n]
            taken += n
            if n == chunk.size:
                self._chunks.popleft()
            else:
                self._chunks[0] = chunk[n:]
        self._waiting -= taken
        return taken

    def _discard(self, count: int) -> None:
        self.counters.dropped += count
        self._waiting -= count
        while count:
            chunk = self._chunks[0]
            if chunk.size <= count:
                self._chunks.popleft()
                count -= chunk.size
            else:
                self._chunks[0] = chunk[count:]
                count = 0


class DevicePace:
    """Keeps a writer from running ahead of real time when the device does not hold it back.

    A sound card's blocking write is the clock: it returns when there is room. Some
    outputs never block (ALSA's ``null``); a writer that always has something to
    write (silence, when no audio is waiting) would then spin. After each write,
    :meth:`wait_after` says how long to sleep: nothing while writes block (a write
    that blocked re-anchors the reckoning on the device, whose clock may run
    slightly fast or slow against the system's), otherwise until real time has
    caught up to within ``headroom`` seconds of what was written.
    """

    BLOCKED_S = 0.002  # a write that took longer waited for the device

    def __init__(self, rate: int, headroom: float) -> None:
        self.rate = rate
        self.headroom = headroom
        self._since: float | None = None  # when the device last held a write back
        self._written = 0  # samples written since then

    def wait_after(self, samples: int, write_took: float, now: float) -> float:
        if self._since is None or write_took > self.BLOCKED_S:
            self._since = now
            self._written = 0
            return 0.0
        self._written += samples
        ahead = self._written / self.rate - (now - self._since)
        return max(ahead - self.headroom, 0.0)
