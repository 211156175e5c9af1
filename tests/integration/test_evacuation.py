"""Evacuation orders and shelter check-in against the real authority's OCSP on 127.0.0.1; the card's part is
played by the test PKI's keys."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.padding import PKCS1v15

from harness.authority import AuthorityClient, AuthorityConfig, AuthorityServer
from harness.pki import testpki
from harness.relying_party.evacuation import EvacuationRefused, EvacuationService

pytestmark = pytest.mark.usefixtures("no_thread_leak")  # tests/conftest.py


@pytest.fixture
def service(tmp_path: Path) -> Iterator[tuple[AuthorityServer, EvacuationService]]:
    server = AuthorityServer(AuthorityConfig(tmp_path / "a.sqlite3")).start()
    try:
        evacuation = EvacuationService(server.url, server.authority.pki)
        holders = server.authority.pki
        residents = (("card", "taro", "east"), ("phone", "hanako", "east"), ("revoked", "jiro", "west"))
        for name, resident, area in residents:
            evacuation.register(resident, f"{resident}-name", area, f"stb-{resident}",
                                holders.holder(name).auth_cert.public_bytes(serialization.Encoding.DER))
        yield server, evacuation
    finally:
        server.stop()


def touch(evacuation: EvacuationService, holder: testpki.HolderPki, shelter: str = "school"):
    challenge_id, challenge = evacuation.challenge()
    signature = holder.auth_key().sign(challenge, PKCS1v15(), hashes.SHA256())
    return evacuation.check_in(shelter, challenge_id, holder.auth_cert.public_bytes(serialization.Encoding.DER),
                               signature)


def test_an_order_names_each_resident_of_the_area_on_their_own_tv(service) -> None:
    _, evacuation = service
    evacuation.issue_order("east", "school")
    assert evacuation.screen("stb-taro") == ["【避難指示】taro-name様 eastに避難指示が出ました。避難所: school"]
    assert "hanako-name様" in evacuation.screen("stb-hanako")[0]
    assert evacuation.screen("stb-jiro") == []


def test_check_in_ties_back_to_the_order_once(service) -> None:
    server, evacuation = service
    order = evacuation.issue_order("east", "school")
    assert evacuation.not_arrived(order.id) == ["hanako", "taro"]
    assert touch(evacuation, server.authority.pki.holder("card")).resident == "taro"
    touch(evacuation, server.authority.pki.holder("card"), "gym")  # a second touch elsewhere changes nothing
    assert evacuation.not_arrived(order.id) == ["hanako"]
    assert order.arrived == {"taro": "school"}


def test_revoked_unregistered_and_replayed_cards_are_refused(service) -> None:
    server, evacuation = service
    holders = server.authority.pki
    with pytest.raises(EvacuationRefused) as revoked:
        touch(evacuation, holders.holder("revoked"))
    assert revoked.value.code == "revoked"
    card = holders.holder("card")
    AuthorityClient(server.url).post("/api/cards/revoke", {"request_id": "r1", "reason": "card_lost",
                                                           "serial": f"{card.auth_cert.serial_number:x}"})
    with pytest.raises(EvacuationRefused) as lost:
        touch(evacuation, card)
    assert lost.value.code == "revoked"
    challenge_id, challenge = evacuation.challenge()
    wrong = card.sign_key().sign(challenge, PKCS1v15(), hashes.SHA256())
    with pytest.raises(EvacuationRefused) as bad:
        evacuation.check_in("school", challenge_id, card.auth_cert.public_bytes(serialization.Encoding.DER), wrong)
    assert bad.value.code == "bad_card"
    with pytest.raises(EvacuationRefused) as replay:
        evacuation.check_in("school", challenge_id, card.auth_cert.public_bytes(serialization.Encoding.DER), wrong)
    assert replay.value.code == "no_challenge"
