"""Transfer progress: a line at every tenth when stderr is not a terminal, a tqdm bar
when it is."""

from __future__ import annotations

import io

import pytest

from peer.app import say
from peer.tty import progress
from peer.tty.progress import BarProgress, LineProgress, make_progress


def test_lines_at_every_tenth_and_none_at_the_end() -> None:
    said: list[str] = []
    bar = make_progress("sending a.bin", 1000, said.append)
    assert isinstance(bar, LineProgress)  # pytest's stderr is not a terminal
    for _ in range(40):
        bar.advance(25)
    bar.close()
    assert said[0] == "sending a.bin: 10% (100 of 1000 bytes)"
    assert said[-1] == "sending a.bin: 90% (900 of 1000 bytes)"
    assert len(said) == 9


def test_a_big_step_says_where_it_landed_once() -> None:
    said: list[str] = []
    bar = LineProgress("receiving b", 100, said.append)
    bar.advance(55)
    bar.advance(1)
    assert said == ["receiving b: 50% (55 of 100 bytes)"]


def test_an_empty_file_says_nothing() -> None:
    said: list[str] = []
    bar = LineProgress("x", 0, said.append)
    bar.advance(0)
    assert said == []


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_terminal_gets_a_bar(monkeypatch: pytest.MonkeyPatch) -> None:
    screen = FakeTerminal()
    monkeypatch.setattr(progress.sys, "stderr", screen)
    bar = make_progress("sending c.bin", 2048, lambda line: None)
    assert isinstance(bar, BarProgress)
    bar.advance(1024)
    bar.close()
    # tqdm redraws at most every 0.1 s; the bar with its label and total is drawn at once.
    assert "sending c.bin:   0%" in screen.getvalue() and "2.00k" in screen.getvalue()


def test_a_line_said_during_a_bar_goes_above_it(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    screen = FakeTerminal()
    monkeypatch.setattr(progress.sys, "stderr", screen)
    bar = make_progress("sending d.bin", 4096, lambda line: None)
    bar.advance(1024)
    drawn = len(screen.getvalue())
    say("bob: hi")
    # The bar was cleared (a carriage return and blanks) before the line, then redrawn.
    after = screen.getvalue()[drawn:]
    assert after.startswith("\r ") and "sending d.bin" in after
    assert capsys.readouterr().out.endswith("] bob: hi\n")
    bar.close()
