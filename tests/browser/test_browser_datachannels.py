"""Chat and file transfer between two call pages in a real Chromium (docs/datachannels.md)."""

from __future__ import annotations

import base64
import hashlib
import json
import random
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiortc import RTCPeerConnection
from playwright.async_api import Browser, Page, expect

from peer.data.filenames import sanitise
from tests.helpers.browser_support import login_page, open_page, page_state, wait_for_state
from tests.helpers.datachannel_support import (
    BIG_TRANSFER_TIMEOUT,
    MiB,
    call_between_pages,
    chat_lines,
    make_file,
    save_download,
    say,
    send_file,
    send_lies,
    transfer_row,
    wait_for_chat_line,
    wait_for_progress,
    wait_for_transfer,
)
from tests.helpers.peer_support import sha256_of
from tests.helpers.server_support import Client
from tests.helpers.support import SignalingServer

pytestmark = [pytest.mark.browser, pytest.mark.slow]

# The other side's name -> the name the page offers the file under (docs/datachannels.md).
NAME_CASES: list[tuple[str, str]] = [
    ("report.pdf", "report.pdf"),
    ("../../etc/passwd", "passwd"),
    ("..\\..\\Windows\\win.ini", "win.ini"),
    ("/absolute/path/notes.txt", "notes.txt"),
    ("dir/", "received-file"),
    ("", "received-file"),
    ("..", "received-file"),
    (" . . ", "received-file"),
    (".bashrc", "bashrc"),
    ("...hidden.txt", "hidden.txt"),
    ("trailing. . ", "trailing"),
    ('a<b>c:d"e|f?g*h.txt', "a_b_c_d_e_f_g_h.txt"),
    ("nul\x00and\x1fcontrol\x7f.bin", "nulandcontrol.bin"),
    ("new\nline\r.txt", "newline.txt"),
    ("\x00.profile", "profile"),
    ("evil\u202etxt.exe", "eviltxt.exe"),  # a right-to-left override would disguise it
    ("zero\u200bwidth.txt", "zerowidth.txt"),
    ("spaces inside ok.txt", "spaces inside ok.txt"),
    # Windows device names with any extension, look-alike slashes, a leading '-'.
    ("CON", "_CON"),
    ("nul.txt", "_nul.txt"),
    ("Com1.tar.gz", "_Com1.tar.gz"),
    ("lpt9 .log", "_lpt9 .log"),
    ("prn", "_prn"),
    ("aux.", "_aux"),
    ("com0.txt", "com0.txt"),
    ("console.txt", "console.txt"),
    ("-rf", "_-rf"),
    ("--help.txt", "_--help.txt"),
    ("..-x", "_-x"),
    ("\u2215..\u2215etc", "_.._etc"),
    ("a\u29f8b\uff0fc\u2044d", "a_b_c_d"),
    ("été 2026.jpg", "été 2026.jpg"),
    ("a" * 300, "a" * 200),
    ("b" * 250 + ".tar.gz", "b" * 197 + ".gz"),
    ("é" * 150 + ".jpeg", "é" * 97 + ".jpeg"),  # 2-byte characters, never cut in half
    ("c" * 190 + ".this is not an extension", ("c" * 190 + ".this is not an extension")[:200]),
    ("d" * 250 + ".averyveryverylongextension", ("d" * 250)[:200]),
    ("e" * 195 + ". x.txt", "e" * 195 + ".txt"),  # a shortened stem loses a trailing ". "
]


async def sanitise_in_page(page: Page, names: list[str]) -> list[str]:
    result: list[str] = await page.evaluate(
        """async (names) => {
            const { sanitiseName } = await import('/static/filename.js');
            return names.map(sanitiseName);
        }""",
        names,
    )
    return result


async def test_sha256_js_matches_hashlib(
    browser: Browser, signaling_server: SignalingServer
) -> None:
    """The page's incremental SHA-256 against FIPS 180-2's vectors and against hashlib on
    random data fed in random-sized pieces (block boundaries, the padding edge cases)."""
    page = await open_page(browser, signaling_server.http_url)
    vectors = {
        "": "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        "abc": "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
        "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq": (
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"
        ),
    }
    found = await page.evaluate(
        """async (texts) => {
            const { Sha256 } = await import('/static/sha256.js');
            const encode = (t) => new TextEncoder().encode(t);
            const million = new Sha256();
            const thousand = encode('a'.repeat(1000));
            for (let i = 0; i < 1000; i++) million.update(thousand);
            return {
                vectors: texts.map((t) => new Sha256().update(encode(t)).hexDigest()),
                million: million.hexDigest(),
            };
        }""",
        list(vectors),
    )
    assert found["vectors"] == list(vectors.values())
    assert found["million"] == hashlib.sha256(b"a" * 1_000_000).hexdigest()

    rng = random.Random(2026)
    sizes = [0, 1, 55, 56, 63, 64, 65, 119, 120, 127, 128, 1000, 65536, 3 * MiB + 17]
    for size in sizes:
        data = rng.randbytes(size)
        pieces = []
        at = 0
        while at < size:
            step = rng.choice([1, 3, 63, 64, 65, 4096, 65536, 100_000])
            pieces.append(min(step, size - at))
            at += pieces[-1]
        digest = await page.evaluate(
            """async ([b64, pieces]) => {
                const { Sha256 } = await import('/static/sha256.js');
                const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
                const hash = new Sha256();
                let at = 0;
                for (const n of pieces) { hash.update(bytes.subarray(at, at + n)); at += n; }
                return hash.hexDigest();
            }""",
            [base64.b64encode(data).decode(), pieces],
        )
        assert digest == hashlib.sha256(data).hexdigest(), f"{size} bytes in {len(pieces)} pieces"


async def test_file_names_from_the_other_side_are_sanitised(
    browser: Browser, signaling_server: SignalingServer
) -> None:
    page = await open_page(browser, signaling_server.http_url)
    names = [raw for raw, _ in NAME_CASES]
    got = await sanitise_in_page(page, names)
    for (raw, expected), name in zip(NAME_CASES, got, strict=True):
        assert name == expected, f"{raw!r} -> {name!r}, expected {expected!r}"
        assert sanitise(raw) == expected, f"the Python peer names {raw!r} {sanitise(raw)!r}"

    # Random names built from everything the rules treat specially: the page and the
    # Python peer must offer a file under the same name.
    rng = random.Random(7)
    alphabet = list(
        'ab.. /\\<>:"|?*\x00\x1f\x7f\x85\u00a0\u200b\u202e\u2028éü日🎉-\u2215\u29f8\uff0f\u2044'
    )
    devices = ["CON", "prn", "Aux", "nul", "COM1", "com9", "LPT1", "lpt5", "-", "--"]
    fuzz = ["".join(rng.choices(alphabet, k=rng.randint(0, 260))) for _ in range(400)]
    # Half the names start as a device name or a dash, then go on as the others do.
    fuzz = [
        rng.choice(devices) + name[: rng.randint(0, 6)] if n % 2 else name
        for n, name in enumerate(fuzz)
    ]
    for raw, name in zip(fuzz, await sanitise_in_page(page, fuzz), strict=True):
        assert name == sanitise(raw), f"{raw!r}: page {name!r}, Python {sanitise(raw)!r}"
        assert 0 < len(name.encode()) <= 200 and not name.startswith((".", " ", "-"))
        assert not any(c in name for c in "/\\\u2215\u29f8\uff0f\u2044")


async def test_chat_both_ways_and_what_is_refused(
    browser: Browser, signaling_server: SignalingServer
) -> None:
    errors: list[str] = []
    alice, bob = await call_between_pages(browser, signaling_server.http_url, errors=errors)

    await say(alice, "hello bob")
    await wait_for_chat_line(bob, "them", "hello bob")
    await say(bob, "hi alice <b>not bold</b> & ünïcødé ✓")
    await wait_for_chat_line(alice, "them", "hi alice <b>not bold</b> & ünïcødé ✓")
    assert await alice.locator("#chat-log b").count() == 0  # text, never HTML
    await wait_for_chat_line(alice, "me", "hello bob")
    assert await alice.input_value("#chat-input") == ""
    said = [(line["from"], line["text"]) for line in await chat_lines(bob)]
    assert said[-2:] == [("them", "hello bob"), ("me", "hi alice <b>not bold</b> & ünïcødé ✓")]
    await expect(bob.locator("#chat-log li[data-from='them'] .who")).to_have_text(["alice"])

    # The limit is 4096 bytes of UTF-8: exactly that goes, one byte more does not.
    at_limit = "é" * 2048
    await say(alice, at_limit)
    await wait_for_chat_line(bob, "them", at_limit)
    too_long = "é" * 2048 + "x"
    await say(alice, too_long)
    refusal = alice.locator("#chat-log li[data-kind='refused']")
    await expect(refusal).to_contain_text("too long (4097 bytes; at most 4096)")
    assert await alice.input_value("#chat-input") == too_long  # kept, to shorten
    # A partner that sends what the format forbids: refused, reported, never shown.
    await alice.evaluate(
        """() => {
            const channel = window.webcamPeer.chatChannel;
            channel.send(JSON.stringify({ type: 'chat', text: 'y'.repeat(5000) }));
            channel.send('z'.repeat(9000));
            channel.send('not json');
            channel.send(new Uint8Array([1, 2, 3]));
            channel.send(JSON.stringify({ type: 'typing' }));
            channel.send(JSON.stringify({ type: 'chat', text: 'still here' }));
        }"""
    )
    await wait_for_chat_line(bob, "them", "still here")
    refused = [line["text"] for line in await chat_lines(bob) if line["kind"] == "refused"]
    assert refused == [
        "refused an oversize chat message from alice (5000 bytes)",
        "refused an oversize chat message from alice (9000 bytes)",
        "refused a malformed (not JSON) chat message from alice (8 bytes)",
        "refused a malformed (binary) chat message from alice (3 bytes)",
    ]
    shown = [line["text"] for line in await chat_lines(bob) if line["from"] == "them"]
    assert not any(text.startswith(("y", "z")) or text == "not json" for text in shown)

    # Hanging up closes the chat box on both sides; the history stays readable.
    await alice.click("#hangup")
    await wait_for_state(bob, "idle")
    for page in (alice, bob):
        await expect(page.locator("#chat-input")).to_be_disabled()
        await expect(page.locator("#chat-send")).to_be_disabled()
        await expect(page.locator("#file-send")).to_be_disabled()
    await wait_for_chat_line(bob, "them", "hello bob")
    assert errors == []


async def test_a_file_each_way_with_its_hash_checked(
    browser: Browser, signaling_server: SignalingServer, tmp_path: Path
) -> None:
    errors: list[str] = []
    alice, bob = await call_between_pages(browser, signaling_server.http_url, errors=errors)
    outbox = tmp_path / "outbox"
    outbox.mkdir()
    big = make_file(outbox / "twenty.bin", 20 * MiB + 12345)
    small = make_file(outbox / "..hidden notes?.txt", 1000)
    empty = make_file(outbox / "empty.dat", 0)

    await send_file(alice, big.path)
    received = await wait_for_transfer(bob, "in", "done", within=BIG_TRANSFER_TIMEOUT)
    sent = await wait_for_transfer(alice, "out", "done")
    await expect(received).to_have_attribute("data-sha256", big.sha256)
    await expect(received.locator(".amount")).to_have_text("20.0 MiB of 20.0 MiB (100%)")
    await expect(sent.locator(".outcome")).to_contain_text("bob verified its SHA-256")
    # Flow control: the sender never let the channel hold much more than its high-water mark.
    max_buffered = int(await sent.get_attribute("data-max-buffered") or "-1")
    assert 0 < max_buffered <= 1 * MiB + 64 * 1024, max_buffered
    downloads = tmp_path / "bob"
    saved = await save_download(bob, received, downloads)
    assert saved.name == "twenty.bin"
    assert saved.stat().st_size == big.size and sha256_of(saved) == big.sha256

    # The other way, three files picked together, each on its own channel at once: a
    # name that needs sanitising, an empty file, and the big one again.
    await send_file(bob, small.path, empty.path, big.path)
    for name in ("hidden notes_.txt", "empty.dat", "twenty.bin"):
        await wait_for_transfer(alice, "in", "done", BIG_TRANSFER_TIMEOUT, name)
    await expect(alice.locator(".transfer[data-direction='in']")).to_have_count(3)
    received = transfer_row(alice, "in", "hidden notes_.txt")
    saved = await save_download(alice, received, tmp_path / "alice")
    assert saved.name == "hidden notes_.txt" and saved.read_bytes() == small.path.read_bytes()
    received = transfer_row(alice, "in", "empty.dat")
    await expect(received).to_have_attribute("data-sha256", hashlib.sha256().hexdigest())
    assert (await save_download(alice, received, tmp_path / "alice")).read_bytes() == b""
    received = transfer_row(alice, "in", "twenty.bin")
    await expect(received).to_have_attribute("data-sha256", big.sha256)
    assert errors == []


@pytest.mark.parametrize("who_cancels", ["sender", "receiver"])
async def test_cancel_from_either_side(
    browser: Browser, signaling_server: SignalingServer, tmp_path: Path, who_cancels: str
) -> None:
    errors: list[str] = []
    alice, bob = await call_between_pages(browser, signaling_server.http_url, errors=errors)
    big = make_file(tmp_path / "big.bin", 200 * MiB)
    await send_file(alice, big.path)
    incoming = transfer_row(bob, "in")
    await wait_for_progress(incoming, within=60)
    canceller = alice if who_cancels == "sender" else bob
    direction = "out" if who_cancels == "sender" else "in"
    await transfer_row(canceller, direction).locator("button.cancel").click()

    row = await wait_for_transfer(bob, "in", "cancelled")
    if who_cancels == "sender":
        await expect(row.locator(".outcome")).to_have_text("alice cancelled; nothing saved")
    row = await wait_for_transfer(alice, "out", "cancelled")
    if who_cancels == "receiver":
        await expect(row.locator(".outcome")).to_have_text("bob cancelled")
    assert await bob.locator("a.download").count() == 0
    for page in (alice, bob):
        await expect(page.locator("button.cancel")).to_be_hidden()

    # The call and its channels carry on: a small file still goes through.
    small = make_file(tmp_path / "after.txt", 5000)
    await send_file(alice, small.path)
    row = await wait_for_transfer(bob, "in", "done")
    await expect(row).to_have_attribute("data-sha256", small.sha256)
    assert errors == []


async def test_hanging_up_mid_transfer_offers_nothing(
    browser: Browser, signaling_server: SignalingServer, tmp_path: Path
) -> None:
    alice, bob = await call_between_pages(browser, signaling_server.http_url)
    big = make_file(tmp_path / "big.bin", 200 * MiB)
    await send_file(alice, big.path)
    await wait_for_progress(transfer_row(bob, "in"), within=60)
    await alice.click("#hangup")
    row = await wait_for_transfer(bob, "in", "failed")
    await expect(row.locator(".outcome")).to_contain_text("nothing saved")
    await wait_for_transfer(alice, "out", "failed")
    assert await bob.locator("a.download").count() == 0
    await wait_for_state(bob, "idle")


@pytest.mark.parametrize(
    ("header", "chunks", "lie", "reason"),
    [
        ({"size": 3000}, [1000, 1000, 1000], "hash", "hash-mismatch"),
        ({"size": 5000}, [1000, 1000, 1000], "", "size-mismatch"),  # fewer bytes than promised
        ({"size": 1500}, [1000, 1000], "", "size-mismatch"),  # more: refused at once
        ({"size": 2**40}, [], "", "too-large"),  # more than the page will hold
        ({"size": -1}, [], "", "bad-header"),
        ({"size": 1.5}, [], "", "bad-header"),
        ({"size": 10, "name": 7}, [], "", "bad-header"),
    ],
)
async def test_a_sender_that_lies_is_refused(
    browser: Browser,
    signaling_server: SignalingServer,
    header: dict[str, Any],
    chunks: list[int],
    lie: str,
    reason: str,
) -> None:
    """Alice's page, driven by a script, speaks the wire format but lies."""
    alice, bob = await call_between_pages(browser, signaling_server.http_url)
    replies = await send_lies(alice, {"name": "lie.bin", **header}, chunks, lie)
    if reason in ("hash-mismatch", "size-mismatch"):
        assert replies[0] == {"type": "accept"}, replies
    assert replies[-1] == {"type": "cancel", "reason": reason}, json.dumps(replies)
    row = await wait_for_transfer(bob, "in", "failed")
    await expect(row.locator(".outcome")).to_contain_text(f"{reason}, nothing saved")
    if reason != "bad-header":
        await expect(row.locator(".name")).to_have_text("lie.bin")
    assert await bob.locator("a.download").count() == 0
    assert await row.get_attribute("data-sha256") is None


async def test_a_call_without_data_channels_is_said_once(
    browser: Browser, signaling_server: SignalingServer
) -> None:
    """An offer with no SCTP m-line (the tutorial's page makes such offers): the call is
    answered, and the page says there is no chat or file transfer in it."""
    carol = await login_page(browser, signaling_server.http_url, "carol")
    pc = RTCPeerConnection()
    try:
        pc.addTransceiver("video", direction="recvonly")
        await pc.setLocalDescription(await pc.createOffer())
        assert "m=application" not in pc.localDescription.sdp
        async with aiohttp.ClientSession() as session:
            robot = Client(await session.ws_connect(signaling_server.ws_url))
            assert (await robot.login("robot"))["success"] is True
            offer = {"type": "offer", "sdp": pc.localDescription.sdp}
            await robot.send({"type": "offer", "offer": offer, "otherUsername": "carol"})
            answer = await robot.recv()
            assert answer["type"] == "answer", answer
            await expect(carol.locator("#notice")).to_have_text(
                "robot's side has no chat or file transfer; video and sound only."
            )
            assert await page_state(carol) == "in-call"
            await expect(carol.locator("#chat-input")).to_be_disabled()
            await expect(carol.locator("#file-send")).to_be_disabled()
            await robot.send({"type": "close", "otherUsername": "carol"})
            await wait_for_state(carol, "idle")
    finally:
        await pc.close()


async def test_wire_messages_are_checked_field_by_field(
    browser: Browser, signaling_server: SignalingServer
) -> None:
    """wire.js, the page's one reader of the format, on what a partner might send."""
    page = await open_page(browser, signaling_server.http_url)
    digest = "ab" * 32
    control_cases: list[tuple[str, dict[str, Any]]] = [
        ('{"type":"file","name":"a.bin","size":0}', {"type": "file", "name": "a.bin", "size": 0}),
        (
            '{"type":"file","name":"a","size":9007199254740991}',
            {"type": "file", "name": "a", "size": 2**53 - 1},
        ),
        ('{"type":"file","name":"a","size":9007199254740992}', {"type": "invalid"}),
        ('{"type":"file","name":"a","size":"10"}', {"type": "invalid"}),
        ('{"type":"file","size":10}', {"type": "invalid"}),
        ('{"type":"accept"}', {"type": "accept"}),
        (f'{{"type":"end","sha256":"{digest.upper()}"}}', {"type": "end", "sha256": digest}),
        ('{"type":"end","sha256":"abc"}', {"type": "invalid"}),
        (f'{{"type":"done","sha256":"{digest}"}}', {"type": "done", "sha256": digest}),
        ('{"type":"cancel","reason":"too-large"}', {"type": "cancel", "reason": "too-large"}),
        ('{"type":"cancel"}', {"type": "cancel", "reason": ""}),
        ('{"type":"resume"}', {"type": "invalid"}),
        ("[1,2]", {"type": "invalid"}),
        ("null", {"type": "invalid"}),
        ("{", {"type": "invalid"}),
    ]
    chat_cases: list[tuple[str, dict[str, Any]]] = [
        ('{"type":"chat","text":"hi"}', {"kind": "chat", "text": "hi"}),
        ('{"type":"chat","text":""}', {"kind": "chat", "text": ""}),
        ('{"type":"chat","text":"a\\nb"}', {"kind": "refused", "why": "not one line"}),
        ('{"type":"chat","text":5}', {"kind": "refused", "why": "no text"}),
        ('{"type":"chat"}', {"kind": "refused", "why": "no text"}),
        ('{"type":"reaction","emoji":"x"}', {"kind": "ignored"}),
        ('{"text":"hi"}', {"kind": "refused", "why": "no type"}),
        ('"hi"', {"kind": "refused", "why": "not an object"}),
        ("hi", {"kind": "refused", "why": "not JSON"}),
    ]
    found = await page.evaluate(
        """async ([controls, chats]) => {
            const wire = await import('/static/wire.js');
            return {
                controls: controls.map(wire.parseFileControl),
                chats: chats.map(wire.parseChat),
            };
        }""",
        [[raw for raw, _ in control_cases], [raw for raw, _ in chat_cases]],
    )
    for (raw, expected), got in zip(control_cases, found["controls"], strict=True):
        got.pop("why", None)
        assert got == expected, raw
    for (raw, expected), got in zip(chat_cases, found["chats"], strict=True):
        got.pop("bytes", None)
        assert got == expected, raw
