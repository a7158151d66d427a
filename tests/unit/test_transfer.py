"""The transfer state machines fed message by message, no channel, no disk."""

from __future__ import annotations

import hashlib
import json

import pytest

from peer.data.transfer import (
    RECV_TRANSITIONS,
    Action,
    CloseChannel,
    Discard,
    IllegalMove,
    Offered,
    OpenFile,
    Receiver,
    RecvEvent,
    RecvState,
    SaveFile,
    Send,
    Sender,
    SendState,
    StartData,
    StopData,
    Write,
)
from peer.data.transfer_wire import MAX_CHUNK, Cancel, WireError, parse_control

DATA = bytes(range(256)) * 1000  # 256000 bytes: several chunks
DIGEST = hashlib.sha256(DATA).hexdigest()


def sent(actions: list[Action]) -> list[str | bytes]:
    return [a.message for a in actions if isinstance(a, Send)]


def control(actions: list[Action]) -> list[dict[str, object]]:
    return [json.loads(m) for m in sent(actions) if isinstance(m, str)]


def header(name: str = "a.bin", size: int = len(DATA)) -> str:
    return json.dumps({"type": "file", "name": name, "size": size})


def end(digest: str = DIGEST) -> str:
    return json.dumps({"type": "end", "sha256": digest})


def accepted_receiver(size: int = len(DATA), max_size: int | None = None) -> Receiver:
    receiver = Receiver(max_size)
    assert receiver.on_text(header(size=size)) == [Offered("a.bin", size)]
    assert receiver.accept() == [OpenFile("a.bin", size)]
    assert control(receiver.opened()) == [{"type": "accept"}]
    return receiver


def test_a_whole_transfer_between_the_two_machines() -> None:
    sender = Sender("a.bin", len(DATA))
    receiver = Receiver()
    written = bytearray()

    def deliver(to_receiver: list[Action]) -> list[Action]:
        replies: list[Action] = []
        for message in sent(to_receiver):
            actions = (
                receiver.on_text(message)
                if isinstance(message, str)
                else receiver.on_binary(message)
            )
            for action in actions:
                if isinstance(action, Write):
                    written.extend(action.data)
                elif isinstance(action, Offered):
                    assert receiver.accept() == [OpenFile(action.name, action.size)]
                    replies.extend(receiver.opened())
                elif isinstance(action, SaveFile):
                    replies.extend(receiver.saved())
                else:
                    replies.append(action)
        return replies

    replies = deliver(sender.start())
    actions = sender.on_text(str(sent(replies)[0]))
    assert actions == [StartData()] and sender.state is SendState.SENDING
    done: list[Action] = []
    for offset in range(0, len(DATA), MAX_CHUNK):
        done += deliver(sender.chunk(DATA[offset : offset + MAX_CHUNK]))
    assert sender.state is SendState.ENDING
    assert receiver.state is RecvState.DONE and bytes(written) == DATA
    assert control(done) == [{"type": "done", "sha256": DIGEST}]
    assert sender.on_text(str(sent(done)[0])) == [CloseChannel()]
    assert sender.state is SendState.DONE and sender.sha256 == DIGEST


def test_nothing_is_opened_before_the_file_is_accepted() -> None:
    receiver = Receiver()
    assert receiver.on_text(header()) == [Offered("a.bin", len(DATA))]
    assert receiver.state is RecvState.OFFERED and receiver.offered
    assert control(receiver.on_binary(b"early")) == [{"type": "cancel", "reason": "protocol-error"}]
    receiver = Receiver()
    receiver.on_text(header())
    assert control(receiver.on_text(end())) == [{"type": "cancel", "reason": "protocol-error"}]


def test_a_rejected_offer_tells_the_sender_and_opens_nothing() -> None:
    receiver = Receiver()
    receiver.on_text(header())
    actions = receiver.reject()
    assert not any(isinstance(a, OpenFile) for a in actions)
    assert control(actions) == [{"type": "cancel", "reason": "rejected"}]
    assert receiver.state is RecvState.CANCELLED and receiver.reason == "rejected"
    assert receiver.accept() == [] and receiver.reject() == []
    sender = Sender("a.bin", len(DATA))
    sender.start()
    sender.on_text(str(sent(actions)[0]))
    assert sender.state is SendState.FAILED and sender.reason == "rejected" and sender.by_remote


def test_the_sender_may_withdraw_an_offer_before_it_is_answered() -> None:
    receiver = Receiver()
    receiver.on_text(header())
    assert receiver.on_text('{"type":"cancel","reason":"cancelled"}') == [Discard(), CloseChannel()]
    assert receiver.accept() == []


def test_an_empty_file() -> None:
    sender = Sender("empty", 0)
    sender.start()
    assert sender.on_text('{"type":"accept"}') == [StartData()]
    assert control(sender.all_read()) == [{"type": "end", "sha256": hashlib.sha256().hexdigest()}]
    receiver = accepted_receiver(size=0)
    assert receiver.on_text(end(hashlib.sha256().hexdigest())) == [SaveFile("a.bin")]


def test_a_lying_hash_is_refused_and_nothing_is_kept() -> None:
    receiver = accepted_receiver()
    for offset in range(0, len(DATA), MAX_CHUNK):
        assert receiver.on_binary(DATA[offset : offset + MAX_CHUNK])
    assert receiver.received == len(DATA)
    actions = receiver.on_text(end("0" * 64))
    assert actions[0] == Discard() and actions[-1] == CloseChannel()
    assert control(actions) == [{"type": "cancel", "reason": "hash-mismatch"}]
    assert receiver.state is RecvState.FAILED and receiver.reason == "hash-mismatch"


def test_fewer_bytes_than_announced_is_a_size_mismatch() -> None:
    receiver = accepted_receiver()
    receiver.on_binary(DATA[:1000])
    actions = receiver.on_text(end())
    assert control(actions) == [{"type": "cancel", "reason": "size-mismatch"}]
    assert Discard() in actions


def test_more_bytes_than_announced_is_a_size_mismatch_at_once() -> None:
    receiver = accepted_receiver(size=10)
    actions = receiver.on_binary(b"x" * 11)
    assert not any(isinstance(a, Write) for a in actions)
    assert control(actions) == [{"type": "cancel", "reason": "size-mismatch"}]
    assert receiver.on_binary(b"more") == []  # finished: later data is dropped


def test_a_file_over_the_limit_is_refused_before_anything_is_opened() -> None:
    receiver = Receiver(max_size=100)
    actions = receiver.on_text(header(size=101))
    assert not any(isinstance(a, OpenFile) for a in actions)
    assert control(actions) == [{"type": "cancel", "reason": "too-large"}]


@pytest.mark.parametrize(
    "message",
    [
        '{"type":"file","name":"a","size":-1}',
        '{"type":"file","name":"a","size":9007199254740992}',
        '{"type":"file","name":"a","size":"12"}',
        '{"type":"file","name":"a","size":true}',
        '{"type":"file","name":["a"],"size":1}',
        '{"type":"file","size":1}',
    ],
)
def test_bad_headers(message: str) -> None:
    receiver = Receiver()
    assert control(receiver.on_text(message)) == [{"type": "cancel", "reason": "bad-header"}]


@pytest.mark.parametrize(
    "message", ["not json", "[]", '{"type":"end"}', '{"type":"end","sha256":"xyz"}', "{}"]
)
def test_garbage_is_a_protocol_error(message: str) -> None:
    receiver = accepted_receiver()
    assert control(receiver.on_text(message)) == [{"type": "cancel", "reason": "protocol-error"}]


def test_data_before_accept_and_oversize_chunks_are_protocol_errors() -> None:
    receiver = Receiver()
    assert control(receiver.on_binary(b"early")) == [{"type": "cancel", "reason": "protocol-error"}]
    receiver = accepted_receiver()
    assert control(receiver.on_binary(b"x" * (MAX_CHUNK + 1))) == [
        {"type": "cancel", "reason": "protocol-error"}
    ]


def test_a_second_header_is_a_protocol_error() -> None:
    receiver = accepted_receiver()
    assert control(receiver.on_text(header())) == [{"type": "cancel", "reason": "protocol-error"}]


def test_cancel_from_the_other_side_is_not_answered() -> None:
    receiver = accepted_receiver()
    receiver.on_binary(DATA[:10])
    actions = receiver.on_text('{"type":"cancel","reason":"cancelled"}')
    assert actions == [Discard(), CloseChannel()]
    assert receiver.state is RecvState.CANCELLED and receiver.by_remote


def test_cancel_here_tells_the_sender() -> None:
    receiver = accepted_receiver()
    actions = receiver.cancel()
    assert control(actions) == [{"type": "cancel", "reason": "cancelled"}]
    assert receiver.state is RecvState.CANCELLED and not receiver.by_remote
    assert receiver.cancel() == []


def test_the_channel_closing_midway_deletes_the_temporary_file() -> None:
    receiver = accepted_receiver()
    receiver.on_binary(DATA[:10])
    assert receiver.closed() == [Discard(), CloseChannel()]
    assert receiver.state is RecvState.FAILED and receiver.reason == "closed"
    assert receiver.closed() == []


def test_a_disk_error_while_saving_fails_the_transfer() -> None:
    receiver = accepted_receiver(size=3)
    receiver.on_binary(b"abc")
    receiver.on_text(end(hashlib.sha256(b"abc").hexdigest()))
    assert receiver.state is RecvState.VERIFYING
    assert control(receiver.disk_error()) == [{"type": "cancel", "reason": "disk-error"}]


def test_the_shell_cannot_skip_a_state() -> None:
    with pytest.raises(IllegalMove):
        Receiver().opened()
    with pytest.raises(IllegalMove):
        accepted_receiver().saved()


def test_every_live_receive_state_can_be_cancelled_or_failed() -> None:
    live = {state for state, _ in RECV_TRANSITIONS}
    for state in live:
        assert RECV_TRANSITIONS[(state, RecvEvent.CANCEL)] is RecvState.CANCELLED
        assert RECV_TRANSITIONS[(state, RecvEvent.FAIL)] is RecvState.FAILED
    assert not live & {RecvState.DONE, RecvState.CANCELLED, RecvState.FAILED}


def test_the_sender_waits_for_accept_before_data() -> None:
    sender = Sender("a.bin", 10)
    assert control(sender.start()) == [{"type": "file", "name": "a.bin", "size": 10}]
    with pytest.raises(IllegalMove):
        sender.chunk(b"x")


def test_the_sender_refuses_a_wrong_done() -> None:
    sender = Sender("a.bin", 3)
    sender.on_text('{"type":"accept"}')
    sender.chunk(b"abc")
    actions = sender.on_text(json.dumps({"type": "done", "sha256": "1" * 64}))
    assert sender.state is SendState.FAILED and sender.reason == "hash-mismatch"
    assert StopData() in actions


def test_the_receiver_refusing_ends_the_sender() -> None:
    sender = Sender("a.bin", 3)
    sender.on_text('{"type":"accept"}')
    actions = sender.on_text('{"type":"cancel","reason":"too-large"}')
    assert actions == [StopData(), CloseChannel()]
    assert sender.state is SendState.FAILED and sender.reason == "too-large" and sender.by_remote


def test_a_file_that_shrank_while_sending() -> None:
    sender = Sender("a.bin", 10)
    sender.on_text('{"type":"accept"}')
    sender.chunk(b"12345")
    assert control(sender.chunk(b"")) == [{"type": "cancel", "reason": "size-mismatch"}]


def test_the_sender_is_cancelled_here_and_closed() -> None:
    sender = Sender("a.bin", 10)
    assert control(sender.cancel()) == [{"type": "cancel", "reason": "cancelled"}]
    assert sender.state is SendState.CANCELLED
    sender = Sender("a.bin", 10)
    assert sender.closed() == [StopData(), CloseChannel()]
    assert sender.state is SendState.FAILED


def test_unknown_cancel_reasons_still_cancel() -> None:
    assert parse_control('{"type":"cancel","reason":"\\u001b[2J"}') == Cancel("cancelled")


def test_a_huge_control_message_is_refused_unread() -> None:
    with pytest.raises(WireError) as caught:
        parse_control('{"type":"file","name":"' + "a" * 20000 + '","size":1}')
    assert caught.value.reason == "protocol-error"
