"""Asking the person at the terminal a yes/no question without blocking the event loop."""

from __future__ import annotations

from peer.tty.terminal import Terminal


async def ask_yes_no(terminal: Terminal, question: str, answer_within: float = 30.0) -> bool:
    """True for an answer starting with y; no answer, EOF or a timeout count as no."""
    line = await terminal.ask(question, answer_within)
    return line is not None and line.strip().lower().startswith("y")
