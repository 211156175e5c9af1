"""School gate, maternal and child health handbook and event tickets against the real authority's OCSP on
127.0.0.1; the card's part is played by the test PKI's keys."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.padding import PKCS1v15

from harness.authority import AuthorityConfig, AuthorityServer
from harness.pki import testpki
from harness.relying_party.card_login import CardRefused
from harness.relying_party.health_handbook import HealthHandbook, HealthRecord
from harness.relying_party.school_gate import SchoolGate
from harness.relying_party.tickets import TicketOffice

pytestmark = pytest.mark.usefixtures("no_thread_leak")  # tests/conftest.py


@pytest.fixture
def authority(tmp_path: Path) -> Iterator[AuthorityServer]:
    with AuthorityServer(AuthorityConfig(tmp_path / "a.sqlite3")) as server:
        yield server


def der(holder: testpki.HolderPki) -> bytes:
    return holder.auth_cert.public_bytes(serialization.Encoding.DER)


def answer(service, holder: testpki.HolderPki) -> tuple[str, bytes, bytes]:
    challenge_id, challenge = service.challenge()
    return challenge_id, der(holder), holder.auth_key().sign(challenge, PKCS1v15(), hashes.SHA256())


def test_gate_touches_tell_the_parent_once_per_change(authority) -> None:
    holders = authority.authority.pki
    gate = SchoolGate(authority.url, holders)
    gate.register_child("taro", "太郎", der(holders.holder("card")), "p@example.test", "stb-1")
    assert gate.touch("正門", "in", der(holders.holder("card"))) is not None
    assert gate.touch("正門", "in", der(holders.holder("card"))) is None  # a double tap
    assert gate.touch("正門", "out", der(holders.holder("card"))) is not None
    assert gate.mails == [("p@example.test", "太郎さんが正門に到着しました"),
                          ("p@example.test", "太郎さんが正門を出ました")]
    assert gate.tv["stb-1"] == [text for _, text in gate.mails]
    for holder, code in (("phone", "not_registered"), ("revoked", "revoked")):
        with pytest.raises(CardRefused) as refused:
            gate.touch("正門", "in", der(holders.holder(holder)))
        assert refused.value.code == code


def test_the_handbook_shows_a_parent_only_their_children_and_audits_it(authority) -> None:
    holders = authority.authority.pki
    handbook = HealthHandbook(authority.url, holders)
    handbook.register_parent("mother", der(holders.holder("card")), ["child-1"])
    handbook.register_parent("other", der(holders.holder("phone")), ["child-2"])
    handbook.add_record(HealthRecord("child-1", "vaccination", "2026-04-01", "BCG"))
    handbook.add_record(HealthRecord("child-2", "vaccination", "2026-05-01", "MR"))
    session = handbook.login(*answer(handbook, holders.holder("card")))
    shown = handbook.view(session)
    assert list(shown) == ["child-1"] and [r.detail for r in shown["child-1"]] == ["BCG"]
    assert handbook.audit == [("mother", "child-1")]
    with pytest.raises(CardRefused) as forged:
        handbook.view("forged")
    assert forged.value.code == "no_session"
    with pytest.raises(CardRefused) as revoked:
        handbook.login(*answer(handbook, holders.holder("revoked")))
    assert revoked.value.code == "revoked"


def test_a_ticket_is_issued_once_per_card_and_admits_once(authority) -> None:
    holders = authority.authority.pki
    office = TicketOffice(authority.url, holders, capacity={"festival": 1})
    ticket = office.issue("festival", *answer(office, holders.holder("card")))
    assert office.issue("festival", *answer(office, holders.holder("card"))).id == ticket.id
    with pytest.raises(CardRefused) as sold_out:
        office.issue("festival", *answer(office, holders.holder("phone")))
    assert sold_out.value.code == "sold_out"
    assert office.enter("festival", *answer(office, holders.holder("card"))).id == ticket.id
    for holder, code in (("card", "already_entered"), ("phone", "no_ticket"), ("revoked", "revoked")):
        with pytest.raises(CardRefused) as refused:
            office.enter("festival", *answer(office, holders.holder(holder)))
        assert refused.value.code == code
