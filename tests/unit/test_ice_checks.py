"""peer/stack/ice_checks.py wraps aioice internals: they must still be there, a changed
aioice is refused naming the way out, and undoing puts aioice's own method back.

What it is for (a NAT'd call connecting without waiting out a retransmission) is
shown by tests/network/test_nat.py::test_the_nat_decides_the_candidate_pair[cone-srflx].
"""

from __future__ import annotations

from typing import Any

import pytest
from aioice.ice import Connection

from peer.stack import ice_checks
from peer.stack.seam import StackChanged, Undo


def test_the_aioice_internals_it_wraps_are_there() -> None:
    ice_checks.SEAM.check()  # raises, naming the attribute or line, if aioice moved it


def test_install_wraps_and_undo_restores_aioices_own() -> None:
    stock = Connection.check_incoming
    undo = Undo()
    ice_checks.install(undo)
    assert Connection.check_incoming is not stock
    assert Connection.check_incoming.__module__ == ice_checks.__name__
    undo()
    assert Connection.check_incoming is stock
    assert "check_incoming" in vars(Connection)  # aioice's own, not an inherited stand-in


def test_a_changed_check_incoming_is_refused_naming_the_flag(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def check_incoming(self: Connection, message: Any, addr: Any, protocol: Any) -> None:
        """A future aioice that looks pairs up some other way."""

    monkeypatch.setattr(Connection, "check_incoming", check_incoming)
    undo = Undo()
    with pytest.raises(StackChanged) as refused:
        ice_checks.install(undo)
    message = str(refused.value)
    assert "Connection.check_incoming no longer finds the pair a check came in on" in message
    assert "run with --ice-checks stock to keep aioice's own" in message
    assert Connection.check_incoming is check_incoming  # nothing was installed
