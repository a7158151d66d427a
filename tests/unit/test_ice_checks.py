"""peer/stack/ice_checks.py wraps aioice internals: they must still be there, and it must wrap once.

What it is for (a NAT'd call connecting without waiting out a retransmission) is
shown by tests/network/test_nat.py::test_the_nat_decides_the_candidate_pair[cone-srflx].
"""

from __future__ import annotations

from aioice.ice import Connection

from peer.stack import ice_checks


def test_the_aioice_internals_it_wraps_are_there() -> None:
    ice_checks.check_aioice_checks()  # raises, naming the attribute, if aioice moved it


def test_installing_twice_wraps_once() -> None:
    ice_checks.install()
    wrapped = Connection.check_incoming
    ice_checks.install()
    assert Connection.check_incoming is wrapped
    assert wrapped.__module__ == ice_checks.__name__
