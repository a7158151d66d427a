"""peer/stack/: every seam into aiortc, aioice and asyncio, its refusal, and its undo.

Each seam passes on the libraries installed here, refuses a version it was not checked
against with one line naming the way out, and the two entry points put back exactly
the library objects they replaced. (Each seam's source-line refusal is shown where the
seam is used: tests/unit/test_consent.py, test_ice_checks.py,
tests/inprocess/test_receive_path.py, test_cc_shell.py, tests/browser/test_sctp_speed.py.)
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aioice.ice
import pytest
from aioice import turn
from aiortc import RTCPeerConnection
from aiortc.jitterbuffer import JitterBuffer
from aiortc.rtcrtpreceiver import NackGenerator
from aiortc.rtcsctptransport import RTCSctpTransport

from peer import cli
from peer.stack import (
    ConnectionOptions,
    ProcessOptions,
    StackChanged,
    consent,
    host_addresses,
    ice_checks,
    install_connection,
    install_process,
    internals,
    nack_requests,
    receive_path,
    rtp_hooks,
    sctp_speed,
    seam,
)
from peer.stack.nack_requests import ScheduledNackGenerator
from peer.stack.receive_path import FrameCompletionBuffer
from peer.stack.sctp_speed import FastSctpTransport

SEAMS = {
    "receive path": (receive_path.SEAM, "run with --receive-path stock"),
    "nack scheduler": (nack_requests.SEAM, "run with --nack stock"),
    "sctp": (sctp_speed.SEAM, "run with --sctp stock"),
    "congestion control": (rtp_hooks.SEAM, "run with --congestion-control stock"),
    "ice checks": (ice_checks.SEAM, "run with --ice-checks stock"),
    "consent loop": (consent.TOLERANT_SEAM, "run with --consent stock"),
    "consent settings": (consent.STOCK_SEAM, "run with --consent aioice"),
    "host addresses": (host_addresses.SEAM, "run without --ice-host"),
    "pair reads": (internals.PAIR_READS, "the stats leave the candidate pair out"),
}


def aioice_as_shipped() -> dict[str, Any]:
    """The aioice objects peer/stack/ may replace, as they are now."""
    return {
        "get_host_addresses": aioice.ice.get_host_addresses,
        "check_incoming": aioice.ice.Connection.check_incoming,
        "query_consent": aioice.ice.Connection.query_consent,
        "delete": turn.TurnClientMixin.delete,
        "CONSENT_INTERVAL": aioice.ice.CONSENT_INTERVAL,
        "CONSENT_FAILURES": aioice.ice.CONSENT_FAILURES,
        "markers": sorted(n for n in vars(aioice.ice) if n.startswith("_webcam_peer")),
    }


@pytest.fixture
def shipped() -> Iterator[dict[str, Any]]:
    before = aioice_as_shipped()
    yield before
    assert aioice_as_shipped() == before, "a test left aioice patched"


@pytest.mark.parametrize("name", list(SEAMS))
def test_each_seam_holds_on_the_installed_libraries(name: str) -> None:
    SEAMS[name][0].check()


@pytest.mark.parametrize("name", list(SEAMS))
def test_each_seam_refuses_an_unchecked_version_in_one_line_naming_the_way_out(
    monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    checked, way_out = SEAMS[name]
    monkeypatch.setattr(seam, "installed_version", lambda library: "0.0.1")
    with pytest.raises(StackChanged) as refused:
        checked.check()
    message = str(refused.value)
    assert "\n" not in message
    assert f"{checked.libraries[0]} 0.0.1 is not a version it was checked against" in message
    assert way_out in message
    assert f"or update {checked.module}" in message


def test_the_versions_table_matches_the_pins() -> None:
    pyproject = (Path(__file__).parents[2] / "pyproject.toml").read_text()
    for library, versions in seam.SUPPORTED.items():
        (minor,) = versions
        major, number = minor.split(".")
        assert f'"{library}>={minor},<{major}.{int(number) + 1}"' in pyproject


def test_install_process_patches_aioice_and_undo_puts_it_back(
    shipped: dict[str, Any],
) -> None:
    undo = install_process(ProcessOptions(ice_hosts=("127.0.0.1",)))
    now = aioice_as_shipped()
    for name in ("get_host_addresses", "check_incoming", "query_consent", "delete"):
        assert now[name] is not shipped[name], name
    assert aioice.ice.get_host_addresses(True, True) == ["127.0.0.1"]
    undo()
    undo()  # twice: nothing more to do


def test_install_process_with_every_way_out_leaves_aioice_alone(shipped: dict[str, Any]) -> None:
    everything_stock = ProcessOptions(
        consent="aioice",
        ice_checks="stock",
        receive_path="stock",
        nack="stock",
        sctp="stock",
        congestion_control="stock",
    )
    undo = install_process(everything_stock)
    assert aioice_as_shipped() == shipped
    undo()


def test_a_refusal_leaves_nothing_patched(
    monkeypatch: pytest.MonkeyPatch, shipped: dict[str, Any]
) -> None:
    def close(self: aioice.ice.Connection) -> None:
        """A future aioice that stops its consent task some other way."""

    # The host addresses and triggered checks go in first; consent then refuses.
    monkeypatch.setattr(aioice.ice.Connection, "close", close)
    with pytest.raises(StackChanged, match=r"Connection\.close no longer cancels the consent task"):
        install_process(ProcessOptions(ice_hosts=("127.0.0.1",)))
    assert aioice_as_shipped() == shipped


async def test_install_connection_is_idempotent_and_undo_gives_aiortc_its_own_back() -> None:
    pc = RTCPeerConnection()
    try:
        receiver = pc.addTransceiver("video").receiver
        pc.createDataChannel("chat")
        stock_buffer = receiver._RTCRtpReceiver__jitter_buffer  # type: ignore[attr-defined]
        stock_nacks = receiver._RTCRtpReceiver__nack_generator  # type: ignore[attr-defined]
        options = ConnectionOptions()
        stack = install_connection(pc, options)
        (buffer,) = stack.receive_buffers
        (scheduler,) = stack.nack_schedulers
        generator = receiver._RTCRtpReceiver__nack_generator  # type: ignore[attr-defined]
        assert isinstance(generator, ScheduledNackGenerator)
        assert generator.scheduler is scheduler
        assert receiver._RTCRtpReceiver__jitter_buffer is buffer  # type: ignore[attr-defined]
        assert isinstance(buffer, FrameCompletionBuffer)
        assert isinstance(pc.sctp, FastSctpTransport)
        assert install_connection(pc, options, stack).receive_buffers == [buffer]
        assert stack.nack_schedulers == [scheduler]
        stack.undo()
        assert receiver._RTCRtpReceiver__jitter_buffer is stock_buffer  # type: ignore[attr-defined]
        assert receiver._RTCRtpReceiver__nack_generator is stock_nacks  # type: ignore[attr-defined]
        assert type(stock_nacks) is NackGenerator
        assert type(stock_buffer) is JitterBuffer
        assert type(pc.sctp) is RTCSctpTransport
    finally:
        await pc.close()


def test_the_command_line_refuses_a_changed_library_naming_the_flag(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], shipped: dict[str, Any]
) -> None:
    monkeypatch.setattr(seam, "installed_version", lambda library: "9.9.9")
    with pytest.raises(SystemExit) as exited:
        cli.main(["--login", "alice", "--no-window"])
    assert exited.value.code == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last.startswith("webcam-peer: error: aiortc 9.9.9 is not a version")
    assert "run with --receive-path stock" in last


def test_the_receive_path_flag_keeps_its_old_name() -> None:
    parser = cli.build_parser()
    assert parser.parse_args(["--login", "a", "--jitter", "stock"]).receive_path == "stock"
    assert parser.parse_args(["--login", "a", "--receive-path", "stock"]).receive_path == "stock"
    assert parser.parse_args(["--login", "a"]).receive_path == "fast"


def test_the_nack_flag_defaults_to_the_scheduler() -> None:
    parser = cli.build_parser()
    assert parser.parse_args(["--login", "a"]).nack == "scheduled"
    assert parser.parse_args(["--login", "a", "--nack", "stock"]).nack == "stock"
