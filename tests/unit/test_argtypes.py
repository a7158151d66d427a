"""signaling/argtypes.py: the command-line types both programs share, with the one-line
reasons argparse shows a person who typed something wrong."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

import pytest

from signaling import argtypes


@pytest.mark.parametrize(
    ("convert", "text", "value"),
    [
        (argtypes.port, "0", 0),
        (argtypes.port, "65535", 65535),
        (argtypes.non_negative(float), "2.5", 2.5),
        (argtypes.number(float, "fps", 1, 120), "30", 30.0),
        (argtypes.frame_size, "640X480", (640, 480)),
        (argtypes.byte_size, "500M", 500 * 1024**2),
        (argtypes.byte_size, "2GiB", 2 * 1024**3),
        (argtypes.username, "alice.b-c_1", "alice.b-c_1"),
    ],
)
def test_good_values(convert: Callable[[str], object], text: str, value: object) -> None:
    assert convert(text) == value


@pytest.mark.parametrize(
    ("convert", "text", "reason"),
    [
        (argtypes.port, "http", "'http' is not a whole number"),
        (argtypes.port, "65536", "port '65536' must be between 0 and 65535"),
        (argtypes.non_negative(int), "-1", "'-1' must not be negative"),
        (argtypes.number(float, "fps", 1, 120), "0", "fps '0' must be between 1 and 120"),
        (argtypes.frame_size, "641x480", "must be even"),
        (argtypes.byte_size, "lots", "must look like 1048576, 500M or 2G"),
        (argtypes.username, "al ice", "not a valid username"),
    ],
)
def test_bad_values_say_why_in_one_line(
    convert: Callable[[str], object], text: str, reason: str
) -> None:
    with pytest.raises(argparse.ArgumentTypeError) as caught:
        convert(text)
    assert reason in str(caught.value) and "\n" not in str(caught.value)


def test_a_secret_comes_from_the_flag_or_the_first_line_of_its_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    parser = argparse.ArgumentParser(prog="x")
    secret = tmp_path / "secret"
    secret.write_text("s3cret\nignored\n")
    assert argtypes.secret_from_file(parser, "token", "given", None) == "given"
    assert argtypes.secret_from_file(parser, "token", None, secret) == "s3cret"
    # The environment's value yields to a file given on the command line.
    assert argtypes.secret_from_file(parser, "token", "env", secret, from_environment="env") == (
        "s3cret"
    )
    with pytest.raises(SystemExit):
        argtypes.secret_from_file(parser, "token", "typed", secret)
    assert "--token and --token-file: give one of them" in capsys.readouterr().err


def test_the_version_is_the_installed_distribution_s() -> None:
    assert argtypes.package_version()[0].isdigit()
