"""Presence and delivery across server processes through Redis (``--redis URL``).

The I/O half of :mod:`signaling.cluster`: this module moves what a
:class:`~signaling.cluster.ClusterRouter` decides, and brings back what it needs to
know. Redis holds, per user online anywhere:

- a presence key ``signaling:user:<name>`` whose value is the id of the process
  the user is connected to (their home). ``SET NX PX`` claims it atomically, so a
  username is unique across processes; the home refreshes its keys every third of
  the TTL, so the keys of a process that dies expire and its users are free again
  within the TTL;
- a channel ``signaling:to:<name>`` that the home subscribes to while the user is
  there. A message for a user elsewhere is published on that channel; PUBLISH
  answers how many processes received it, and 0 means nobody is home:
  ``unknown-user``, without looking anything up first.

Order: every envelope this process sends goes through one task that PUBLISHes in
order on one connection (batched: all envelopes for one user that queued up while
the previous batch was in flight share one PUBLISH), and every envelope it receives
arrives in order on its one subscriber connection. Redis keeps the order between
the two, so messages from one user to another arrive in the order they were sent.

Claims and releases go through one ordered task too, so a user who leaves and logs
in again on the same process finds the name free.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

import orjson
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from .cluster import DEFAULT_PRESENCE_TTL, ClaimUsername, ClusterRouter, ListOnline, RemoteUser
from .protocol import JSONObject
from .router import Connection, Outgoing

logger = logging.getLogger(__name__)

KEY_PREFIX: Final = "signaling:user:"
CHANNEL_PREFIX: Final = "signaling:to:"
NODE_CHANNEL_PREFIX: Final = "signaling:node:"
_REFRESH_CHUNK: Final = 1000
_SUBSCRIBE_TIMEOUT: Final = 10.0

# Delete a presence key only if this process still owns it.
_RELEASE_SCRIPT: Final = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""
# Push back the expiry of every key this process owns; name the ones it lost.
_REFRESH_SCRIPT: Final = """
local lost = {}
for i, key in ipairs(KEYS) do
  if redis.call('GET', key) == ARGV[1] then
    redis.call('PEXPIRE', key, ARGV[2])
  else
    lost[#lost + 1] = key
  end
end
return lost
"""

Deliver = Callable[[list[Outgoing]], None]


class RedisUnavailable(RuntimeError):
    """Redis could not be reached (at startup: the server does not start)."""


@dataclass(frozen=True, slots=True)
class _Claim:
    username: str
    answer: asyncio.Future[bool]


@dataclass(frozen=True, slots=True)
class _Release:
    username: str


class RedisRouting:
    """One server process's link to the others, for its :class:`ClusterRouter`."""

    def __init__(
        self,
        url: str,
        router: ClusterRouter,
        deliver: Deliver,
        *,
        drop: Callable[[Connection], None],
        ttl: float = DEFAULT_PRESENCE_TTL,
    ) -> None:
        self.url = url
        self.router = router
        self.node = uuid.uuid4().hex
        self.ttl = ttl
        self._deliver = deliver
        self._drop = drop
        self._redis: aioredis.Redis | None = None
        self._pubsub: Any = None
        self._tasks: list[asyncio.Task[None]] = []
        self._outgoing: dict[str, list[JSONObject]] = {}
        self._outgoing_ready = asyncio.Event()
        self._presence_ops: asyncio.Queue[_Claim | _Release] = asyncio.Queue()
        self._subscribing: dict[bytes, asyncio.Future[None]] = {}

    # ---- lifecycle -----------------------------------------------------------------
    async def start(self) -> None:
        self._redis = aioredis.from_url(self.url)
        try:
            await self._redis.ping()
        except (RedisError, OSError) as exc:
            await self._redis.aclose()
            raise RedisUnavailable(f"cannot reach Redis at {self.url}: {exc}") from exc
        self._release_script = self._redis.register_script(_RELEASE_SCRIPT)
        self._refresh_script = self._redis.register_script(_REFRESH_SCRIPT)
        self._pubsub = self._redis.pubsub()
        # Subscribed to something from the start, so listen() never runs dry.
        await self._pubsub.subscribe(NODE_CHANNEL_PREFIX + self.node)
        for work in (self._receive, self._publish, self._presence, self._refresh):
            self._tasks.append(asyncio.create_task(work(), name=f"redis-{work.__name__}"))
        logger.info("sharing users through Redis at %s as process %s", self.url, self.node)

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        assert self._redis is not None
        with contextlib.suppress(RedisError, OSError):
            # Leaving cleanly: the names are free at once, not after the TTL.
            names = self.router.local_usernames()
            while not self._presence_ops.empty():
                op = self._presence_ops.get_nowait()
                if isinstance(op, _Release):
                    names.append(op.username)
            async with self._redis.pipeline(transaction=False) as pipe:
                for name in names:
                    await self._release_script(
                        keys=[KEY_PREFIX + name], args=[self.node], client=pipe
                    )
                await pipe.execute()
        with contextlib.suppress(RedisError, OSError):
            await self._pubsub.aclose()
        await self._redis.aclose()

    # ---- what the server shell calls -------------------------------------------------
    async def handle_frame(self, connection: Connection, frame: str | bytes) -> list[Outgoing]:
        """Router.handle_frame, plus answering the queries it parks; returns the
        messages for sockets of this process (envelopes are on their way)."""
        local = self._send(self.router.handle_frame(connection, frame))
        query = self.router.pending.pop(connection, None)
        if isinstance(query, ClaimUsername):
            granted = await self._claim(query.username)
            local += self._send(self.router.claimed(connection, query.username, granted))
            if granted and self.router.username_of(connection) != query.username:
                self._presence_ops.put_nowait(_Release(query.username))  # gone meanwhile
        elif isinstance(query, ListOnline):
            local += self._send(self.router.listed(connection, await self._online()))
        return local

    def disconnect(self, connection: Connection) -> list[Outgoing]:
        username = self.router.username_of(connection)
        local = self._send(self.router.disconnect(connection))
        if username is not None:
            self._presence_ops.put_nowait(_Release(username))
        return local

    # ---- internals -----------------------------------------------------------------
    def _send(self, outgoing: list[Outgoing]) -> list[Outgoing]:
        """Queue the envelopes, return what is for this process's sockets."""
        local = []
        for destination, message in outgoing:
            if isinstance(destination, RemoteUser):
                if not self._outgoing:
                    self._outgoing_ready.set()
                self._outgoing.setdefault(destination.username, []).append(message)
            else:
                local.append((destination, message))
        return local

    async def _claim(self, username: str) -> bool:
        answer: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._presence_ops.put_nowait(_Claim(username, answer))
        return await answer

    async def _online(self) -> list[str]:
        assert self._redis is not None
        names = []
        try:
            async for key in self._redis.scan_iter(match=KEY_PREFIX + "*", count=1000):
                names.append(key.decode().removeprefix(KEY_PREFIX))
        except (RedisError, OSError):
            logger.exception("could not list the users online through Redis")
            return self.router.local_usernames()
        return names

    async def _publish(self) -> None:
        """Send queued envelopes in order, one PUBLISH per target per batch."""
        assert self._redis is not None
        while True:
            await self._outgoing_ready.wait()
            self._outgoing_ready.clear()
            batch, self._outgoing = self._outgoing, {}
            try:
                async with self._redis.pipeline(transaction=False) as pipe:
                    for username, envelopes in batch.items():
                        pipe.publish(CHANNEL_PREFIX + username, orjson.dumps(envelopes))
                    receivers = await pipe.execute()
            except (RedisError, OSError):
                logger.exception("lost %d envelopes: Redis did not take them", len(batch))
                continue
            for envelopes, count in zip(batch.values(), receivers, strict=True):
                if count == 0:
                    for data in envelopes:
                        self._deliver(self._send(self.router.undeliverable(data)))

    async def _receive(self) -> None:
        """Envelopes for this process's users, in the order they were published."""
        async for message in self._pubsub.listen():
            kind = message["type"]
            if kind == b"message" or kind == "message":
                try:
                    envelopes = orjson.loads(message["data"])
                    for data in envelopes:
                        self._deliver(self._send(self.router.handle_envelope(data)))
                except Exception:
                    logger.exception("could not handle a message from Redis")
            elif kind in ("subscribe", b"subscribe"):
                future = self._subscribing.pop(message["channel"], None)
                if future is not None and not future.done():
                    future.set_result(None)

    async def _presence(self) -> None:
        """Claims and releases, in the order they were asked for."""
        while True:
            ops = [await self._presence_ops.get()]
            while not self._presence_ops.empty():
                ops.append(self._presence_ops.get_nowait())
            try:
                await self._apply_presence(ops)
            except (RedisError, OSError, TimeoutError):
                logger.exception("Redis presence update failed")
                for op in ops:
                    if isinstance(op, _Claim) and not op.answer.done():
                        op.answer.set_result(False)

    async def _apply_presence(self, ops: list[_Claim | _Release]) -> None:
        assert self._redis is not None
        ttl_ms = int(self.ttl * 1000)
        async with self._redis.pipeline(transaction=False) as pipe:
            for op in ops:
                key = KEY_PREFIX + op.username
                if isinstance(op, _Claim):
                    pipe.set(key, self.node, nx=True, px=ttl_ms)
                else:
                    await self._release_script(keys=[key], args=[self.node], client=pipe)
            results = await pipe.execute()
        released = [CHANNEL_PREFIX + op.username for op in ops if isinstance(op, _Release)]
        granted = [op for op, ok in zip(ops, results, strict=True) if isinstance(op, _Claim) and ok]
        if released:
            await self._pubsub.unsubscribe(*released)
        if granted:
            # A user is logged in once messages for them reach this process.
            channels = [(CHANNEL_PREFIX + op.username).encode() for op in granted]
            loop = asyncio.get_running_loop()
            waits = [self._subscribing.setdefault(ch, loop.create_future()) for ch in channels]
            await self._pubsub.subscribe(*channels)
            await asyncio.wait_for(asyncio.gather(*waits), _SUBSCRIBE_TIMEOUT)
        for op, ok in zip(ops, results, strict=True):
            if isinstance(op, _Claim) and not op.answer.done():
                op.answer.set_result(bool(ok))

    async def _refresh(self) -> None:
        """Keep this process's presence keys alive; notice partners whose home died."""
        assert self._redis is not None
        while True:
            await asyncio.sleep(self.ttl / 3)
            try:
                await self._refresh_once()
            except (RedisError, OSError):
                logger.exception("could not refresh presence in Redis")

    async def _refresh_once(self) -> None:
        assert self._redis is not None
        names = self.router.local_usernames()
        ttl_ms = int(self.ttl * 1000)
        for start in range(0, len(names), _REFRESH_CHUNK):
            keys = [KEY_PREFIX + name for name in names[start : start + _REFRESH_CHUNK]]
            lost = await self._refresh_script(keys=keys, args=[self.node, ttl_ms])
            for key in lost:
                # This process stalled past the TTL and the name went to someone else.
                username = key.decode().removeprefix(KEY_PREFIX)
                connection = self.router.connection_of(username)
                logger.warning("user %s was claimed elsewhere; disconnecting it here", username)
                if connection is not None:
                    self._drop(connection)
        partners = sorted(self.router.remote_partners())
        if partners:
            async with self._redis.pipeline(transaction=False) as pipe:
                for name in partners:
                    pipe.exists(KEY_PREFIX + name)
                alive = await pipe.execute()
            for name, exists in zip(partners, alive, strict=True):
                if not exists:
                    logger.info("user %s vanished with its process; ending its calls", name)
                    self._deliver(self.router.partner_vanished(name))
