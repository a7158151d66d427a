"""Blocking capture loops moved off the event loop: a thread, a bounded queue, no backlog.

A camera or microphone produces frames whether or not anyone is ready for them;
when the sender falls behind, the oldest frame is the one to drop (a call wants the
newest picture, not a growing delay).
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from typing import Generic, TypeVar

from aiortc import MediaStreamTrack
from aiortc.mediastreams import MediaStreamError
from av import AudioFrame, VideoFrame

from media.sources.clock import MediaClock

logger = logging.getLogger(__name__)

T = TypeVar("T")


class CaptureThread(Generic[T]):
    """Runs ``read`` (blocking; an item, or None at the end) in a daemon thread.

    ``close`` releases the device; it runs in the capture thread once reading has
    stopped, so a device is never closed under a read in progress. :meth:`stop`
    waits for that: a process that exits while the thread still reads tears the
    audio library down under it (PortAudio on PulseAudio then crashes the process).
    """

    # One read is one frame (tens of milliseconds); a device that hangs is not waited for.
    STOP_WAIT_S = 2.0

    def __init__(
        self,
        name: str,
        read: Callable[[], T | None],
        close: Callable[[], None],
        depth: int = 2,
    ) -> None:
        self._read = read
        self._close = close
        self._name = name
        self._depth = depth
        self._queue: asyncio.Queue[T | None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self.dropped = 0
        self.error: BaseException | None = None

    def start(self) -> None:
        if self._thread is not None:
            return
        self._loop = asyncio.get_running_loop()
        self._queue = asyncio.Queue()
        self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
        self._thread.start()

    async def get(self) -> T | None:
        """The next item, or None when the source has ended (see ``error``)."""
        self.start()
        assert self._queue is not None
        return await self._queue.get()

    def stop(self) -> None:
        """Ends reading and releases the device before returning (or after ``STOP_WAIT_S``)."""
        if self._stopping.is_set():
            return
        self._stopping.set()
        if self._thread is None:
            self._close()
        elif self._thread is not threading.current_thread():
            self._thread.join(self.STOP_WAIT_S)
            if self._thread.is_alive():
                logger.warning("%s did not stop within %.0f s", self._name, self.STOP_WAIT_S)

    def _run(self) -> None:
        try:
            while not self._stopping.is_set():
                item = self._read()
                self._deliver(item)
                if item is None:
                    return
        except Exception as exc:
            logger.warning("%s stopped: %s", self._name, exc)
            self.error = exc
            self._deliver(None)
        finally:
            self._close()

    def _deliver(self, item: T | None) -> None:
        assert self._loop is not None
        try:
            self._loop.call_soon_threadsafe(self._put, item)
        except RuntimeError:  # the loop is closed: nobody is listening any more
            self._stopping.set()

    def _put(self, item: T | None) -> None:
        assert self._queue is not None
        while item is not None and self._queue.qsize() >= self._depth:
            self._queue.get_nowait()
            self.dropped += 1
        self._queue.put_nowait(item)


class DeviceTrack(MediaStreamTrack):
    """A track fed by a capture thread (a camera, a microphone).

    Frames are timed by their arrival: the device's own rate sets the pace.
    """

    _frames: CaptureThread[AudioFrame] | CaptureThread[VideoFrame]
    _clock: MediaClock

    async def recv(self) -> AudioFrame | VideoFrame:
        if self.readyState != "live":
            raise MediaStreamError
        frame = await self._frames.get()
        if frame is None:
            self.stop()
            raise MediaStreamError
        frame.pts = self._clock.pts_now()
        frame.time_base = self._clock.time_base
        return frame

    def stop(self) -> None:
        super().stop()
        self._frames.stop()
