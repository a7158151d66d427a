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

Order: everything this process asks of Redis (envelopes to publish, usernames to
claim or release) goes into one queue that one task sends, in order, as pipelines
on one connection; everything it receives arrives in order on its one subscriber
connection. Redis keeps the order between the two, so messages from one user to
another arrive in the order they were sent; a user who leaves is released before
the close that tells their partner goes out, so whoever hears it finds them gone
from the user list; a user who leaves and logs in again finds the name free.
Envelopes for one user that queue up while the previous pipeline is in flight
share one PUBLISH (a JSON array): under load Redis does one operation for many.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Final

import orjson
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from .cluster import CLAIM, DEFAULT_PRESENCE_TTL, ClusterRouter, Directory, RemoteUser
from .protocol import JSONObject
from .router import Connection, Outgoing

logger = logging.getLogger(__name__)

KEY_PREFIX: Final = "signaling:user:"
CHANNEL_PREFIX: Final = "signaling:to:"
NODE_CHANNEL_PREFIX: Final = "signaling:node:"
_REFRESH_CHUNK: Final = 1000
_SUBSCRIBE_TIMEOUT: Final = 10.0
_STOP_TIMEOUT: Final = 5.0
# A Redis that stops answering (hung, or a network that drops packets) fails a
# command after this many seconds instead of holding it forever.
SOCKET_TIMEOUT: Final = 3.0
# A login waits at most this long for its claim: then "server-unavailable".
CLAIM_TIMEOUT: Final = 5.0
# How often Redis is pinged for /healthz.
_HEALTH_INTERVAL: Final = 1.0
# A crashed background task is started again after 0.5 s, 1 s, 2 s ... at most 10 s.
_RESTART_FIRST: Final = 0.5
_RESTART_MAX: Final = 10.0
# A task that ran this long before crashing starts again from the first delay.
_RESTART_RESET_AFTER: Final = 60.0

# Delete a presence key only if this process still owns it.
_RELEASE_SCRIPT: Final = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""
# Push back the expiry of every key this process owns, take back the ones that
# vanished (Redis restarted empty, or this process stalled past the TTL and nobody
# claimed them meanwhile), and name the ones another process holds now.
_REFRESH_SCRIPT: Final = """
local lost = {}
for i, key in ipairs(KEYS) do
  local owner = redis.call('GET', key)
  if owner == ARGV[1] then
    redis.call('PEXPIRE', key, ARGV[2])
  elseif not owner then
    redis.call('SET', key, ARGV[1], 'PX', ARGV[2])
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
    answer: asyncio.Future[bool | None]  # None: Redis did not answer


@dataclass(frozen=True, slots=True)
class _Release:
    username: str


# One step of the command stream: envelopes per target user (any order between
# targets, queue order for each), or a claim, or a release.
_Step = dict[str, list[JSONObject]] | _Claim | _Release


class RedisRouting:
    """One server process's link to the others, for its :class:`ClusterRouter`."""

    def __init__(
        self,
        url: str,
        router: ClusterRouter,
        deliver: Deliver,
        *,
        drop: Callable[[Connection], None],
        on_bad_envelope: Callable[[], None] = lambda: None,
        ttl: float = DEFAULT_PRESENCE_TTL,
    ) -> None:
        self.url = url
        self.router = router
        self.node = uuid.uuid4().hex
        self.ttl = ttl
        self._deliver = deliver
        self._drop = drop
        self._on_bad_envelope = on_bad_envelope
        self._redis: aioredis.Redis | None = None
        self._pubsub: Any = None
        self._tasks: list[asyncio.Task[None]] = []
        self._stream: asyncio.Task[None] | None = None
        self._steps: list[_Step] = []
        self._steps_waiting = asyncio.Event()
        self._stopping = False
        self._subscribing: dict[bytes, asyncio.Future[None]] = {}
        # What /healthz reports: task name -> why it is down; Redis's last failure.
        self._down: dict[str, str] = {}
        self._unreachable: str | None = None

    # ---- lifecycle -----------------------------------------------------------------
    async def start(self) -> None:
        timeouts = {"socket_timeout": SOCKET_TIMEOUT, "socket_connect_timeout": SOCKET_TIMEOUT}
        self._redis = aioredis.from_url(self.url, **timeouts)
        try:
            await self._redis.ping()
        except (RedisError, OSError) as exc:
            await self._redis.aclose()
            raise RedisUnavailable(f"cannot reach Redis at {self.url}: {exc}") from exc
        self._release_script = self._redis.register_script(_RELEASE_SCRIPT)
        self._refresh_script = self._redis.register_script(_REFRESH_SCRIPT)
        # The subscriber waits for messages as long as there are none: no read
        # timeout on its connection (a hung Redis shows in the health pings).
        self._bus = aioredis.from_url(self.url, socket_connect_timeout=SOCKET_TIMEOUT)
        self._pubsub = self._bus.pubsub()
        # Subscribed to something from the start, so listen() never runs dry.
        await self._pubsub.subscribe(NODE_CHANNEL_PREFIX + self.node)
        self._stream = self._supervised(self._send_steps)
        for work in (self._receive, self._refresh, self._check_health):
            self._tasks.append(self._supervised(work))
        logger.info("sharing users through Redis at %s as process %s", self.url, self.node)

    async def stop(self) -> None:
        # The command stream is not cancelled but told to finish what is queued:
        # redis-py can swallow a cancellation that lands inside a pipeline.
        self._stopping = True
        self._steps_waiting.set()
        for task in self._tasks:
            task.cancel()
        tasks = [*self._tasks, *([self._stream] if self._stream is not None else [])]
        _, late = await asyncio.wait(tasks, timeout=_STOP_TIMEOUT)
        for task in late:
            logger.warning("%s did not stop in time", task.get_name())
            task.cancel()
        assert self._redis is not None
        with contextlib.suppress(RedisError, OSError):
            # Leaving cleanly: the names are free at once, not after the TTL.
            names = self.router.local_usernames()
            async with self._redis.pipeline(transaction=False) as pipe:
                for name in names:
                    keys = [KEY_PREFIX + name]
                    await self._release_script(keys=keys, args=[self.node], client=pipe)
                await pipe.execute()
        with contextlib.suppress(RedisError, OSError):
            await self._pubsub.aclose()
        await self._bus.aclose()
        await self._redis.aclose()

    def problems(self) -> list[str]:
        """Why this process cannot serve its users fully now (empty: healthy)."""
        problems = [f"Redis is unreachable: {self._unreachable}"] if self._unreachable else []
        return problems + [f"{name} is down: {why}" for name, why in sorted(self._down.items())]

    def _supervised(self, work: Callable[[], Awaitable[None]]) -> asyncio.Task[None]:
        name = f"redis-{work.__name__.lstrip('_').replace('_', '-')}"
        return asyncio.create_task(self._supervise(name, work), name=name)

    async def _supervise(self, name: str, work: Callable[[], Awaitable[None]]) -> None:
        """Run ``work`` again whenever it crashes, later and later while it keeps
        crashing; /healthz says so meanwhile."""
        loop = asyncio.get_running_loop()
        delay = _RESTART_FIRST
        while True:
            started = loop.time()
            try:
                await work()
                return  # finished: the routing is stopping
            except Exception as exc:  # any crash is restarted
                if loop.time() - started > _RESTART_RESET_AFTER:
                    delay = _RESTART_FIRST
                self._down[name] = f"crashed with {type(exc).__name__}: {exc}"[:200]
                logger.error(
                    "%s crashed (%s: %s); restarting it in %.1f s",
                    name,
                    type(exc).__name__,
                    exc,
                    delay,
                )
            await asyncio.sleep(delay)
            delay = min(delay * 2, _RESTART_MAX)
            self._down.pop(name, None)
            logger.info("%s restarted", name)

    async def _check_health(self) -> None:
        """Ping Redis: /healthz is unhealthy while it does not answer."""
        assert self._redis is not None
        while True:
            try:
                await self._redis.ping()
            except (RedisError, OSError) as exc:
                if self._unreachable is None:
                    logger.warning("Redis at %s does not answer: %s", self.url, exc)
                self._unreachable = str(exc)[:200] or type(exc).__name__
            else:
                if self._unreachable is not None:
                    logger.info("Redis at %s answers again", self.url)
                self._unreachable = None
            await asyncio.sleep(_HEALTH_INTERVAL)

    # ---- what the server shell calls -------------------------------------------------
    async def handle_frame(self, connection: Connection, frame: str | bytes) -> list[Outgoing]:
        """Router.handle_frame, with the Directory's queries answered; returns the
        messages for sockets of this process (envelopes are on their way)."""
        local: list[Outgoing] = []
        for destination, message in self._send(self.router.handle_frame(connection, frame)):
            if isinstance(destination, Directory):
                local += await self._ask(destination.connection, message)
            else:
                local.append((destination, message))
        return local

    async def _ask(self, connection: Connection, query: JSONObject) -> list[Outgoing]:
        if query["query"] != CLAIM:
            return self._send(self.router.listed(connection, await self._online()))
        username = query["username"]
        granted = await self._claim(username)
        local = self._send(self.router.claimed(connection, username, granted))
        if granted and self.router.username_of(connection) != username:
            self._queue(_Release(username))  # gone meanwhile
        return local

    def disconnect(self, connection: Connection) -> list[Outgoing]:
        username = self.router.username_of(connection)
        outgoing = self.router.disconnect(connection)
        if username is not None:
            self._queue(_Release(username))  # before the close to the partner
        return self._send(outgoing)

    # ---- internals -----------------------------------------------------------------
    def _send(self, outgoing: list[Outgoing]) -> list[Outgoing]:
        """Queue the envelopes, return what is for this process (its sockets, and
        queries for the Directory, which only handle_frame's messages make)."""
        local = []
        for destination, message in outgoing:
            if isinstance(destination, RemoteUser):
                steps = self._steps
                if not steps or not isinstance(steps[-1], dict):
                    self._queue({})
                batch = steps[-1]
                assert isinstance(batch, dict)
                batch.setdefault(destination.username, []).append(message)
            else:
                local.append((destination, message))
        return local

    def _queue(self, step: _Step) -> None:
        if not self._steps:
            self._steps_waiting.set()
        self._steps.append(step)

    async def _claim(self, username: str) -> bool | None:
        answer: asyncio.Future[bool | None] = asyncio.get_running_loop().create_future()
        self._queue(_Claim(username, answer))
        try:
            return await asyncio.wait_for(asyncio.shield(answer), CLAIM_TIMEOUT)
        except TimeoutError:
            logger.warning("Redis did not answer a login within %.0f s", CLAIM_TIMEOUT)
            # If the claim goes through after all, nobody took the name: give it back.
            answer.add_done_callback(lambda done: self._give_back(username, done))
            return None

    def _give_back(self, username: str, answer: asyncio.Future[bool | None]) -> None:
        if not answer.cancelled() and answer.result():
            self._queue(_Release(username))

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

    async def _receive(self) -> None:
        """Envelopes for this process's users, in the order they were published."""
        while True:
            try:
                async for message in self._pubsub.listen():
                    self._on_pubsub(message)
            except (RedisError, OSError) as exc:
                # redis-py reconnects and subscribes again on the next read.
                logger.warning("lost the Redis subscription (%s); listening again in 1 s", exc)
                await asyncio.sleep(1)

    def _on_pubsub(self, message: dict[str, Any]) -> None:
        kind = message["type"]
        if kind == "message":
            try:
                batch = orjson.loads(message["data"])
            except orjson.JSONDecodeError as exc:
                self._bad_envelope(message["channel"], message["data"], exc)
                return
            if not isinstance(batch, list):
                batch = [batch]  # not a batch: the one envelope is checked below
            for data in batch:
                # Each envelope on its own: one that breaks does not take the
                # ones after it down with it.
                try:
                    self._deliver(self._send(self.router.handle_envelope(data)))
                except Exception as exc:  # logged in one line, counted
                    self._bad_envelope(message["channel"], data, exc)
        elif kind == "subscribe":
            future = self._subscribing.pop(message["channel"], None)
            if future is not None and not future.done():
                future.set_result(None)

    def _bad_envelope(self, channel: bytes, data: object, exc: Exception) -> None:
        self._on_bad_envelope()
        logger.warning(
            "dropping a bad envelope on %s (%s: %s): %.200r",
            channel.decode(errors="replace"),
            type(exc).__name__,
            exc,
            data,
        )

    async def _send_steps(self) -> None:
        """The command stream: whatever queued up, as one pipeline, in order."""
        while True:
            await self._steps_waiting.wait()
            self._steps_waiting.clear()
            steps, self._steps = self._steps, []
            if self._stopping and not steps:
                return
            try:
                await self._apply(steps)
            except (RedisError, OSError, TimeoutError):
                logger.exception("Redis did not take %d queued steps", len(steps))
                for step in steps:
                    if isinstance(step, _Claim) and not step.answer.done():
                        # Unanswered, not refused: the user hears "server-unavailable",
                        # not that somebody else has the name.
                        step.answer.set_result(None)

    async def _apply(self, steps: list[_Step]) -> None:
        assert self._redis is not None
        ttl_ms = int(self.ttl * 1000)
        async with self._redis.pipeline(transaction=False) as pipe:
            for step in steps:
                if isinstance(step, dict):
                    for username, envelopes in step.items():
                        pipe.publish(CHANNEL_PREFIX + username, orjson.dumps(envelopes))
                elif isinstance(step, _Claim):
                    pipe.set(KEY_PREFIX + step.username, self.node, nx=True, px=ttl_ms)
                else:
                    keys = [KEY_PREFIX + step.username]
                    await self._release_script(keys=keys, args=[self.node], client=pipe)
            results = iter(await pipe.execute())
        granted: list[_Claim] = []
        for step in steps:
            if isinstance(step, dict):
                for envelopes in step.values():
                    if next(results) == 0:  # nobody home
                        for data in envelopes:
                            self._deliver(self._send(self.router.undeliverable(data)))
            elif isinstance(step, _Claim):
                if next(results):
                    granted.append(step)
                elif not step.answer.done():
                    step.answer.set_result(False)
            else:
                next(results)
                # Subscriptions and unsubscriptions in step order: a user who left
                # and came back must end up subscribed.
                await self._subscribe(granted)
                granted = []
                await self._pubsub.unsubscribe(CHANNEL_PREFIX + step.username)
        await self._subscribe(granted)

    async def _subscribe(self, claims: list[_Claim]) -> None:
        """Listen on the claimed users' channels; a claim is answered once messages
        for that user reach this process."""
        if not claims:
            return
        channels = [(CHANNEL_PREFIX + claim.username).encode() for claim in claims]
        loop = asyncio.get_running_loop()
        waits = [self._subscribing.setdefault(ch, loop.create_future()) for ch in channels]
        await self._pubsub.subscribe(*channels)
        await asyncio.wait_for(asyncio.gather(*waits), _SUBSCRIBE_TIMEOUT)
        for claim in claims:
            if not claim.answer.done():
                claim.answer.set_result(True)

    async def _refresh(self) -> None:
        """Keep this process's presence keys alive; notice partners whose home died."""
        assert self._redis is not None
        while True:
            await asyncio.sleep(self.ttl / 3)
            try:
                await self._refresh_once()
            except (RedisError, OSError) as exc:
                logger.warning("could not refresh presence in Redis: %s", exc)

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
