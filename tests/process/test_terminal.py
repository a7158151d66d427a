"""The one stdin reader: questions get the next line, everything else goes to the
line handler, EOF ends reading, and a peer in a shell's background is not stopped."""

from __future__ import annotations

import asyncio
import os
import re
import shlex
import subprocess

from peer.tty.terminal import Terminal
from tests.helpers.peer_support import BOT_FLAGS
from tests.helpers.support import BIN, SignalingServer


async def test_questions_take_the_next_line_and_the_rest_go_to_the_handler() -> None:
    read_end, write_end = os.pipe()
    seen: asyncio.Queue[str] = asyncio.Queue()
    with os.fdopen(read_end) as stream, os.fdopen(write_end, "w") as writer:
        terminal = Terminal(stream)
        terminal.start(seen.put_nowait)
        writer.write("hello\n")
        writer.flush()
        assert await asyncio.wait_for(seen.get(), 10) == "hello"
        question = asyncio.ensure_future(terminal.ask("answer? [y/n]", 10))
        await asyncio.sleep(0.05)
        writer.write("y\n/help\n")
        writer.flush()
        assert await question == "y"
        assert await asyncio.wait_for(seen.get(), 10) == "/help"
        writer.close()
        # At EOF a question is answered with None: nobody can type any more.
        assert await terminal.ask("again?", 10) is None
        assert terminal.closed and seen.empty()


async def test_no_answer_in_time_is_none() -> None:
    read_end, write_end = os.pipe()
    with os.fdopen(read_end) as stream, os.fdopen(write_end, "w"):
        terminal = Terminal(stream)
        terminal.start(lambda line: None)
        assert await terminal.ask("anyone?", 0.2) is None


def test_a_peer_in_the_background_of_a_shell_is_not_stopped(
    signaling_server: SignalingServer,
) -> None:
    peer = shlex.join(
        [
            str(BIN / "webcam-peer"),
            "--server",
            signaling_server.ws_url,
            *BOT_FLAGS,
            *("--login", "zed", "--video", "none", "--audio", "none"),
        ]
    )
    # An interactive bash on a pseudo-terminal (script): job control, so a background
    # job that reads the terminal would get SIGTTIN and stop ("T" in ps).
    shell = f"{peer} & sleep 5; ps -o stat= -p $!; kill -INT $!; wait $!; echo exit=$?"
    result = subprocess.run(
        ["script", "-qec", f"bash --norc --noprofile -ic {shlex.quote(shell)}", "/dev/null"],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
    )
    output = result.stdout
    assert "waiting for calls" in output, output
    states = re.findall(r"^\s*([DIRSTZtlsN+<L]+)\s*$", output, flags=re.MULTILINE)
    assert states, output
    assert "T" not in states[0], f"the peer was stopped ({states[0]}):\n{output}"
    assert "exit=0" in output, output
