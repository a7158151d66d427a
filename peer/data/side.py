"""The data side of the peer: chat, files and media state over each call's data
channels, and the lines typed at the terminal that drive them.

One :class:`CallData` per call (peer/data/channels.py); between calls typed chat says
"not in a call". The media state the partner announces (muted, camera off, screen)
rides on the chat channel too (docs/datachannels.md, "Media state").
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiortc import RTCDataChannel

from peer.call.answering import FilePolicy
from peer.call.av_commands import AvCommand
from peer.call.av_controls import describe_change
from peer.call.connection import Call
from peer.call.local_media import LocalMedia
from peer.call.media_state import MEDIA_TYPE, MediaState, decode_media_state, encode_media_state
from peer.data.channels import CallData, ReceiveOptions
from peer.data.chat import RecentLines
from peer.data.filenames import unreadable_file
from peer.tty.commands import (
    HELP,
    AnswerOfferCommand,
    BadCommand,
    CancelCommand,
    ChatCommand,
    HelpCommand,
    SendCommand,
    parse_command,
)


@dataclass(frozen=True)
class DataOptions:
    login: str
    receive: ReceiveOptions
    file_policy: FilePolicy = field(default_factory=FilePolicy)
    send_files: tuple[Path, ...] = ()  # to the first call only (--send-file)


class DataSide:
    def __init__(
        self,
        options: DataOptions,
        media: LocalMedia,
        *,
        say: Callable[[str], None],
        at_a_terminal: Callable[[], bool],
    ) -> None:
        self.options = options
        self.media = media
        self.say = say
        self.at_a_terminal = at_a_terminal
        self.data: CallData | None = None
        self.chat_lines = RecentLines()
        self.remote_media: MediaState | None = None  # what the partner says they send
        self._files_to_send = list(options.send_files)
        self._transfers: dict[str, int] | None = None  # the current or last call's counters

    # ---- a call's channels -------------------------------------------------------------
    def new_call(self, call: Call) -> None:
        o = self.options
        self._transfers = None
        self.data = CallData(
            call.pc,
            o.login,
            call.other,
            o.receive,
            self.say,
            self.chat_lines,
            file_policy=o.file_policy,
            at_a_terminal=self.at_a_terminal,
        )
        self.data.on_extension = self._extension_message
        self.remote_media = None

    def channel_arrived(self, channel: RTCDataChannel) -> None:
        if self.data is not None:
            self.data.channel_arrived(channel)

    def started(self) -> None:
        for path in self._files_to_send:
            assert self.data is not None
            self.data.send_file(path)
        self._files_to_send.clear()  # --send-file goes to the first call only

    def connected(self, call: Call) -> None:
        if call.pc.sctp is None and self.data is not None:
            self.data.no_data_channels()

    async def close(self) -> None:
        data, self.data = self.data, None
        if data is not None:
            await data.close()
            self._transfers = dict(data.counters)  # for the final stats line

    # ---- what the report shows ---------------------------------------------------------
    def transfers(self) -> dict[str, int] | None:
        return dict(self.data.counters) if self.data is not None else self._transfers

    def media_stats(self) -> dict[str, Any]:
        return {
            "sending": vars(self.media.state),
            "remote": vars(self.remote_media) if self.remote_media else None,
        }

    def overlay_lines(self, call: Call | None) -> list[str]:
        lines = []
        if self.remote_media is not None and self.remote_media.describe():
            lines.append(f"{call.other if call else 'they'}: {self.remote_media.describe()}")
        lines.extend(self.chat_lines.visible(time.monotonic()))
        return lines

    # ---- mute, camera off, screen ------------------------------------------------------
    def local_media_changed(self, state: MediaState) -> None:
        if self.data is not None:
            self.data.send_extension(encode_media_state(state))

    async def announce_media(self) -> None:
        data = self.data
        if data is not None:
            await data.chat_open.wait()
            data.send_extension(encode_media_state(self.media.state))

    def _extension_message(self, kind: str, message: str) -> None:
        if kind != MEDIA_TYPE or self.data is None:
            return
        other = self.data.other
        state = decode_media_state(message)
        if state is None:
            self.say(f"ignored a malformed media-state message from {other}")
            return
        for line in describe_change(self.remote_media, state, other):
            self.say(line)
        self.remote_media = state

    # ---- the terminal ------------------------------------------------------------------
    def typed(self, line: str) -> None:
        """A line from the terminal: chat or a command."""
        command = parse_command(line)
        if command is None:
            return
        if isinstance(command, HelpCommand):
            self.say(HELP)
        elif isinstance(command, AvCommand):
            self.media.command(command)
        elif isinstance(command, BadCommand):
            self.say(command.why)
        elif self.data is None:
            self.say("not in a call: nothing sent")
        elif isinstance(command, ChatCommand):
            self.data.send_chat(command.text)
        elif isinstance(command, SendCommand):
            problem = unreadable_file(command.path)
            if problem:
                self.say(problem)
            else:
                self.data.send_file(command.path)
        elif isinstance(command, CancelCommand):
            self.data.cancel(command.number)
        elif isinstance(command, AnswerOfferCommand):
            self.data.answer_offer(command.number, command.accept)
