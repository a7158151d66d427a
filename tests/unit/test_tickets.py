"""Resume tickets and the names kept for their holders after a start (signaling.tickets,
signaling.resume): the pure parts, and the files they live in."""

from __future__ import annotations

import stat
from pathlib import Path

from signaling.resume import (
    Resumption,
    held_names_path,
    load_held,
    load_or_create_secret,
    save_held,
    start_resumption,
    writer_name,
)
from signaling.tickets import make_ticket, ticket_expiry, verify_ticket

SECRET = b"0123456789abcdef0123456789abcdef"
NOW = 1_800_000_000.0


def test_a_ticket_is_good_for_its_name_until_it_expires() -> None:
    ticket = make_ticket(SECRET, "alice", int(NOW) + 60)
    assert verify_ticket(SECRET, ticket, "alice", NOW)
    assert ticket_expiry(SECRET, ticket, "alice", NOW) == int(NOW) + 60


def test_a_tampered_ticket_is_refused() -> None:
    ticket = make_ticket(SECRET, "alice", int(NOW) + 60)
    name, expiry, mac = ticket.split(":")
    flipped = mac[:-1] + ("0" if mac[-1] != "0" else "1")
    assert not verify_ticket(SECRET, f"{name}:{expiry}:{flipped}", "alice", NOW)
    # A later expiry with the old MAC.
    assert not verify_ticket(SECRET, f"{name}:{int(expiry) + 3600}:{mac}", "alice", NOW)
    assert not verify_ticket(SECRET, "alice", "alice", NOW)
    assert not verify_ticket(SECRET, "alice:soon:" + mac, "alice", NOW)
    assert not verify_ticket(SECRET, ticket + ":x", "alice", NOW)


def test_an_expired_ticket_is_refused() -> None:
    ticket = make_ticket(SECRET, "alice", int(NOW) - 1)
    assert not verify_ticket(SECRET, ticket, "alice", NOW)


def test_a_ticket_for_another_name_is_refused() -> None:
    ticket = make_ticket(SECRET, "bob", int(NOW) + 60)
    assert not verify_ticket(SECRET, ticket, "alice", NOW)


def test_a_ticket_under_another_secret_is_refused() -> None:
    ticket = make_ticket(b"another secret", "alice", int(NOW) + 60)
    assert not verify_ticket(SECRET, ticket, "alice", NOW)


def test_a_reserved_name_is_kept_for_its_holder_during_the_grace_period() -> None:
    ticket = make_ticket(SECRET, "alice", int(NOW) + 3600)
    resumption = Resumption(SECRET, grace_until=NOW + 60, reserved={"alice": int(NOW) + 3600})
    assert not resumption.admits("alice", None, NOW)
    assert not resumption.admits("alice", make_ticket(b"guess", "alice", int(NOW) + 60), NOW)
    assert resumption.admits("carol", None, NOW)  # nobody held carol
    assert resumption.admits("alice", ticket, NOW)
    # After the grace period the name is anybody's again.
    assert resumption.admits("alice", None, NOW + 60)


def test_the_holder_back_ends_the_reservation_and_leaving_frees_the_name() -> None:
    resumption = Resumption(SECRET, grace_until=NOW + 60, reserved={"alice": int(NOW) + 3600})
    ticket = resumption.issue("alice", NOW)
    assert verify_ticket(SECRET, ticket, "alice", NOW)
    assert "alice" not in resumption.reserved
    assert resumption.held == {"alice": int(NOW) + resumption.ticket_ttl}
    resumption.released("alice")
    assert resumption.held == {}


def test_the_secret_file_is_made_private_once_and_then_reused(tmp_path: Path) -> None:
    path = tmp_path / "session-secret"
    first = load_or_create_secret(path)
    assert len(first) == 64
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_or_create_secret(path) == first


def test_held_names_survive_in_their_file_until_their_tickets_expire(tmp_path: Path) -> None:
    secret_path = tmp_path / "session-secret"
    save_held(held_names_path(secret_path), {"alice": int(NOW) + 60, "bob": int(NOW) - 1})
    assert load_held(held_names_path(secret_path), NOW) == {"alice": int(NOW) + 60}
    resumption = start_resumption(secret_path, NOW, grace=60)
    assert resumption.reserved == {"alice": int(NOW) + 60}
    assert not resumption.admits("alice", None, NOW + 1)


def test_each_redis_process_writes_its_own_list_and_a_start_reads_them_all(
    tmp_path: Path,
) -> None:
    secret_path = tmp_path / "session-secret"
    later = int(NOW) + 600
    save_held(held_names_path(secret_path, "host-1-8080"), {"alice": later, "carol": later})
    save_held(held_names_path(secret_path, "host-1-8081"), {"bob": later, "carol": later + 5})
    save_held(held_names_path(secret_path), {"dave": later})  # a lone server's, before
    (tmp_path / "session-secret.names.host-1-8082.partial").write_text(f"eve {later}\n")
    (tmp_path / "session-secret.namesake").write_text(f"frank {later}\n")
    resumption = start_resumption(secret_path, NOW)
    assert resumption.reserved == {
        "alice": later,
        "bob": later,
        "carol": later + 5,
        "dave": later,
    }


def test_a_writer_name_is_a_file_name() -> None:
    name = writer_name("::1", 8080)
    assert name.endswith("-__1-8080") and "/" not in name
