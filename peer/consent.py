"""ICE consent freshness (RFC 7675) tuned so a vanished partner is noticed in seconds.

aioice sends a consent check every 5 s (randomised 0.8-1.2x) with no
retransmission and declares the pair dead after 6 failed checks in a row: a
partner whose process or network disappeared is noticed only after about 30 s.
When the signaling server is down too, consent is the only news of it, and a
person does not stare at a frozen picture for half a minute. A check a second,
dead after 5 misses, notices within about 6-10 s (each miss also waits out
aioice's 0.5 s transaction timeout) and still rides out a second or two of
packet loss.

aioice reads both numbers as module globals each time round its loop, so they
are set at runtime; :func:`check_aioice_consent` verifies that this is still so,
and ``tests/test_consent.py`` runs it, so an aioice upgrade fails loudly
instead of silently going back to 30 s.

The news of the expiry (aioice's ConnectionClosed event, which makes aiortc's
connection fail) is only given once the ICE connection has closed its sockets,
and closing a TURN allocation first asks the TURN server to delete it, waiting
out every STUN retransmission (about 40 s) when the path to it is dead too. The
deletion is a courtesy (an allocation nobody refreshes expires by itself, RFC
8656 section 6), so it is given :data:`TURN_DELETE_TIMEOUT`.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Final

from aioice import ice, turn

logger = logging.getLogger(__name__)

CHECK_INTERVAL: Final = 1.0  # seconds between checks (aioice randomises 0.8-1.2x)
FAILURES: Final = 5  # consecutive unanswered checks that end the media connection
TURN_DELETE_TIMEOUT: Final = 1.0  # seconds a TURN server gets to confirm a deletion
_GLOBALS: Final = ("CONSENT_INTERVAL", "CONSENT_FAILURES")
_INSTALLED: Final = "_webcam_peer_bounded_delete"


def check_aioice_consent() -> None:
    """Raise if aioice's consent loop no longer reads the globals :func:`install` sets."""
    loop = getattr(ice.Connection, "query_consent", None)
    if loop is None:
        raise RuntimeError(
            "aioice Connection.query_consent is gone: peer/consent.py needs updating"
        )
    delete = getattr(turn.TurnClientMixin, "delete", None)
    if delete is None or not asyncio.iscoroutinefunction(delete):
        raise RuntimeError(
            "aioice TurnClientMixin.delete is gone or no coroutine: peer/consent.py needs updating"
        )
    for name in _GLOBALS:
        if not isinstance(getattr(ice, name, None), int | float):
            raise RuntimeError(f"aioice.ice.{name} is gone: peer/consent.py needs updating")
        if name not in loop.__code__.co_names:
            raise RuntimeError(
                f"aioice Connection.query_consent no longer reads {name}: "
                "peer/consent.py needs updating"
            )


def install(interval: float = CHECK_INTERVAL, failures: int = FAILURES) -> None:
    """Make every aioice connection check consent every ``interval`` s, ``failures`` strikes."""
    if interval <= 0 or failures < 1:
        raise ValueError(f"bad consent settings: interval {interval} s, {failures} failures")
    check_aioice_consent()
    setattr(ice, "CONSENT_INTERVAL", interval)  # noqa: B010
    setattr(ice, "CONSENT_FAILURES", failures)  # noqa: B010
    _bound_turn_deletion()
    logger.debug("ICE consent: a check every %.1f s, %d misses end the call", interval, failures)


def _bound_turn_deletion() -> None:
    if getattr(turn.TurnClientMixin, _INSTALLED, False):
        return
    original = turn.TurnClientMixin.delete

    async def delete(self: turn.TurnClientMixin) -> None:
        try:
            # aioice closes the socket in a finally, so a cancelled deletion leaks nothing.
            await asyncio.wait_for(original(self), TURN_DELETE_TIMEOUT)
        except TimeoutError:
            logger.info("the TURN server did not confirm deleting our allocation; left to expire")

    setattr(turn.TurnClientMixin, "delete", delete)  # noqa: B010
    setattr(turn.TurnClientMixin, _INSTALLED, True)


def worst_case_seconds(interval: float = CHECK_INTERVAL, failures: int = FAILURES) -> float:
    """The longest a dead path goes unnoticed: one interval since the last answered check,
    then ``failures`` more, each waiting out aioice's transaction timeout."""
    from aioice import stun

    return 1.2 * interval + failures * (1.2 * interval + stun.RETRY_RTO) + TURN_DELETE_TIMEOUT
