"""The file-name sanitiser and the non-overwriting name choice (docs/datachannels.md)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from peer.data.filenames import MAX_NAME_BYTES, candidates, claim, sanitise, unreadable_file


@pytest.mark.parametrize(
    ("offered", "saved"),
    [
        ("report.pdf", "report.pdf"),
        ("../../etc/passwd", "passwd"),
        ("..\\..\\x", "x"),
        ("C:\\Users\\bob\\Desktop\\notes.txt", "notes.txt"),
        (".bashrc", "bashrc"),
        ("a/b/.hidden", "hidden"),
        ("...secret", "secret"),
        ("  spaced.txt  ", "spaced.txt"),
        ("trailing.", "trailing"),
        ("a\x00b\x01c\x1b[2J.txt", "abc[2J.txt"),
        ("line\nbreak\r.txt", "linebreak.txt"),
        ('what<is>this:"|?*.txt', "what_is_this_____.txt"),
        ("", "received-file"),
        (".", "received-file"),
        ("..", "received-file"),
        ("/", "received-file"),
        ("dir/", "received-file"),
        ("\x00\x01", "received-file"),
        ("résumé 日本語.pdf", "résumé 日本語.pdf"),
        ("emoji 🎉.png", "emoji 🎉.png"),
        ("CON", "_CON"),
        ("nul.txt", "_nul.txt"),
        ("LPT1.tar.gz", "_LPT1.tar.gz"),
        ("com9", "_com9"),
        ("AUX .txt", "_AUX .txt"),
        ("prn.", "_prn"),
        ("com10.txt", "com10.txt"),
        ("conftest.py", "conftest.py"),
        ("-rf", "_-rf"),
        ("../-rf", "_-rf"),
        ("\u2215..\u2215etc\u2215passwd", "_.._etc_passwd"),
        ("a\u29f8b\uff0fc\u2044d.txt", "a_b_c_d.txt"),
    ],
)
def test_sanitise(offered: str, saved: str) -> None:
    assert sanitise(offered) == saved


def test_a_long_name_is_cut_in_the_stem_and_keeps_its_extension() -> None:
    name = sanitise("x" * 1000 + ".tar.gz")
    assert name.endswith("x.gz")
    assert len(name.encode()) == MAX_NAME_BYTES


def test_a_long_multibyte_name_is_cut_between_characters() -> None:
    name = sanitise("日" * 1000 + ".txt")
    assert name.endswith(".txt")
    assert len(name.encode()) <= MAX_NAME_BYTES
    assert set(name[:-4]) == {"日"}


def test_a_long_name_without_extension() -> None:
    assert sanitise("y" * 1000) == "y" * MAX_NAME_BYTES


def test_candidates_number_the_stem() -> None:
    names = candidates("a.bin")
    assert [next(names) for _ in range(3)] == ["a.bin", "a (1).bin", "a (2).bin"]
    names = candidates("README")
    assert [next(names) for _ in range(2)] == ["README", "README (1)"]


def test_numbered_candidates_of_a_long_name_stay_within_the_bound() -> None:
    names = candidates(sanitise("z" * 1000 + ".txt"))
    next(names)
    numbered = next(names)
    assert numbered.endswith(" (1).txt")
    assert len(numbered.encode()) <= MAX_NAME_BYTES


def _temp(directory: Path, content: bytes) -> Path:
    path = directory / f".webcam-peer-{content.hex()}.part"
    path.write_bytes(content)
    return path


def test_claim_never_overwrites(tmp_path: Path) -> None:
    (tmp_path / "a.bin").write_bytes(b"already here")
    first = claim(_temp(tmp_path, b"one"), tmp_path, "a.bin")
    second = claim(_temp(tmp_path, b"two"), tmp_path, "a.bin")
    assert first == tmp_path / "a (1).bin" and first.read_bytes() == b"one"
    assert second == tmp_path / "a (2).bin" and second.read_bytes() == b"two"
    assert (tmp_path / "a.bin").read_bytes() == b"already here"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a (1).bin", "a (2).bin", "a.bin"]


def test_claim_into_a_directory_that_is_gone_fails_and_keeps_the_data(tmp_path: Path) -> None:
    temp = _temp(tmp_path, b"data")
    with pytest.raises(OSError):
        claim(temp, tmp_path / "missing", "a.bin")
    assert temp.read_bytes() == b"data"


def test_unreadable_file(tmp_path: Path) -> None:
    (tmp_path / "ok").write_bytes(b"x")
    assert unreadable_file(tmp_path / "ok") is None
    assert unreadable_file(tmp_path / "nope") == f"{tmp_path / 'nope'}: no such file"
    assert unreadable_file(tmp_path) == f"{tmp_path}: not a regular file"
    if os.geteuid() != 0:  # root reads anything
        (tmp_path / "secret").write_bytes(b"x")
        (tmp_path / "secret").chmod(0)
        assert "not readable" in str(unreadable_file(tmp_path / "secret"))
