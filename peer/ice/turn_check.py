"""Ask the TURN server for a relay with our credentials, and say plainly why not.

aioice gathers a relay candidate and, when the TURN server refuses or does not
answer, quietly gathers none: a relay-only call then just never connects, and
any other call loses its fallback without a word. One allocation of our own
(made, then deleted) turns that into a sentence the user can act on.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from aioice import stun
from aioice.turn import create_turn_endpoint
from aiortc import RTCConfiguration

from peer.errors import ExitCode, PeerError
from peer.ice.config import TurnServer, is_relay_only, turn_server

logger = logging.getLogger(__name__)

CHECK_TIMEOUT: Final = 5.0  # as long as aioice itself waits for a relay candidate


@dataclass(frozen=True)
class TurnCheck:
    server: TurnServer
    problem: str | None = None  # None: the server gave us a relay
    relayed_address: tuple[str, int] | None = None

    @property
    def ok(self) -> bool:
        return self.problem is None


class _Closed(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.closed = asyncio.get_running_loop().create_future()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closed.done():
            self.closed.set_result(None)


async def check_turn(server: TurnServer, within: float = CHECK_TIMEOUT) -> TurnCheck:
    """Allocate a relay on ``server`` and release it again."""
    where = f"the TURN server {server.url}"
    try:
        transport, protocol = await asyncio.wait_for(
            create_turn_endpoint(
                _Closed,
                server_addr=(server.host, server.port),
                username=server.username,
                password=server.password,
                ssl=server.tls,
                transport=server.transport,
            ),
            within,
        )
    except stun.TransactionFailed as exc:
        code, reason = exc.response.attributes.get("ERROR-CODE", (0, "no reason given"))
        if code in (401, 403):
            problem = f"{where} refused the credentials ({code} {reason})"
        else:
            problem = f"{where} refused a relay ({code} {reason})"
        return TurnCheck(server, problem)
    except (TimeoutError, stun.TransactionTimeout):
        return TurnCheck(server, f"{where} did not answer within {within:.0f} s")
    except ssl.SSLCertVerificationError as exc:
        detail = exc.verify_message or str(exc)
        return TurnCheck(server, f"{where} has a TLS certificate we do not trust ({detail})")
    except ConnectionRefusedError:
        return TurnCheck(server, f"{where} refused the connection (is it running?)")
    except OSError as exc:
        return TurnCheck(server, f"{where} is unreachable ({exc})")
    except Exception as exc:  # anything else aioice may raise: still a sentence, not a trace
        logger.debug("TURN check of %s", server.url, exc_info=True)
        return TurnCheck(server, f"{where} could not be used ({type(exc).__name__}: {exc})")
    relayed = transport.get_extra_info("sockname")
    transport.close()  # deletes the allocation
    try:
        await asyncio.wait_for(asyncio.shield(protocol.closed), 2.0)
    except TimeoutError:
        logger.debug("the check's TURN allocation on %s was not deleted in time", server.url)
    logger.info("TURN server %s relays for us (relayed address %s)", server.url, relayed)
    return TurnCheck(server, None, tuple(relayed) if relayed else None)


class TurnReadiness:
    """Whether our calls have a TURN relay to fall back on; checked once after login.

    With ``--relay-only`` a call cannot connect without one, so the check comes
    first and its failure ends the program (exit code 10). Otherwise it runs
    beside everything else: a problem is a warning, and it explains an ICE
    failure later.
    """

    def __init__(self, warn: Callable[[str], None]) -> None:
        self._warn = warn
        self.result: TurnCheck | None = None
        self.configured = False
        self._task: asyncio.Task[None] | None = None

    async def check(self, configuration: RTCConfiguration) -> None:
        server = turn_server(configuration)
        self.configured = server is not None
        if server is None:
            if is_relay_only(configuration):
                raise PeerError(
                    ExitCode.NO_RELAY,
                    "--relay-only needs a TURN server: give --ice-server turn:HOST:PORT with "
                    "--turn-user/--turn-password, or use a signaling server that hands out "
                    "TURN credentials (signaling-server --turn-secret)",
                )
            return
        if is_relay_only(configuration):
            self.result = await check_turn(server)
            if self.result.problem:
                raise PeerError(ExitCode.NO_RELAY, f"relay-only: {self.result.problem}")
            return
        self._task = asyncio.create_task(self._in_background(server), name="turn-check")

    async def _in_background(self, server: TurnServer) -> None:
        self.result = await check_turn(server)
        if self.result.problem:
            self._warn(
                f"warning: {self.result.problem}; calls can connect directly or through "
                "STUN, but not through a relay"
            )

    def explain_failure(self, reason: str) -> str:
        """``reason`` for a call whose media never connected, with what TURN has to do
        with it."""
        if self.result is not None and self.result.problem:
            return f"{reason}; {self.result.problem}, so there was no relay to fall back on"
        if not self.configured:
            return (
                f"{reason}; no TURN server was configured to relay through "
                "(behind symmetric NATs a call needs one: see --ice-server)"
            )
        return reason

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
