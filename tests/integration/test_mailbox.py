"""The e-mailbox address-change service against the real authority and real business inboxes on 127.0.0.1; the
card's part is played by the test PKI's card keys."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.padding import PKCS1v15

from harness.authority import AuthorityClient, AuthorityConfig, AuthorityServer
from harness.pki import testpki
from harness.relying_party.business import BusinessInbox
from harness.relying_party.mailbox import Mailbox, MailboxRefused

pytestmark = pytest.mark.usefixtures("no_thread_leak")  # tests/conftest.py
NEW_ADDRESS = "東京都港区芝公園四丁目２番８号"


@pytest.fixture
def world(tmp_path: Path) -> Iterator[tuple[AuthorityServer, Mailbox, dict[str, BusinessInbox]]]:
    server = AuthorityServer(AuthorityConfig(tmp_path / "a.sqlite3")).start()
    inboxes = {name: BusinessInbox(name).start() for name in ("post", "insurer", "broadcaster")}
    try:
        yield server, Mailbox(server.url, server.authority.pki, {n: i.url for n, i in inboxes.items()}), inboxes
    finally:
        for inbox in inboxes.values():
            inbox.stop()
        server.stop()


def der(cert) -> bytes:
    return cert.public_bytes(serialization.Encoding.DER)


def enrol(mailbox: Mailbox, holder: testpki.HolderPki, businesses=("post", "insurer")):
    return mailbox.enrol("taro", der(holder.auth_cert), der(holder.sign_cert), list(businesses))


def revoke(server: AuthorityServer, holder: testpki.HolderPki, reason: str) -> None:
    AuthorityClient(server.url).post("/api/cards/revoke", {"request_id": f"rv-{reason}", "reason": reason,
                                                           "serial": f"{holder.sign_cert.serial_number:x}"})


def login(mailbox: Mailbox, holder: testpki.HolderPki) -> str:
    challenge_id, challenge = mailbox.challenge()
    signature = holder.auth_key().sign(challenge, PKCS1v15(), hashes.SHA256())
    return mailbox.login(challenge_id, der(holder.auth_cert), signature)


def test_a_move_is_noticed_once_and_delivered_once_to_each_consented_business(world) -> None:
    server, mailbox, inboxes = world
    card = server.authority.pki.holder("card")
    enrol(mailbox, card)
    revoke(server, card, "holder_moved")
    assert [n.user for n in mailbox.sync()] == ["taro"]
    assert mailbox.sync() == []
    session = login(mailbox, card)  # the auth certificate survives the move
    notice = mailbox.notices("taro")[0]
    deliveries = mailbox.approve(session, notice.id, NEW_ADDRESS, "req-1")
    assert {d.business: d.status for d in deliveries} == {"post": "delivered", "insurer": "delivered"}
    assert [r.new_address for r in inboxes["post"].received.values()] == [NEW_ADDRESS]
    assert inboxes["broadcaster"].received == {}


def test_retries_and_lost_acknowledgements_still_deliver_exactly_once(world) -> None:
    server, mailbox, inboxes = world
    card = server.authority.pki.holder("card")
    enrol(mailbox, card)
    revoke(server, card, "holder_moved")
    mailbox.sync()
    session = login(mailbox, card)
    notice = mailbox.notices("taro")[0]
    inboxes["post"].drop_acks = 1
    inboxes["insurer"].refuse = 2
    first = mailbox.approve(session, notice.id, NEW_ADDRESS, "req-1")
    assert {d.business: d.status for d in first} == {"post": "pending", "insurer": "pending"}
    mailbox.approve(session, notice.id, "somewhere else", "req-1")  # the same request again: no change
    assert mailbox.deliver_pending() == 0
    assert mailbox.approve(session, notice.id, "another address", "req-2")[0].status == "delivered"
    for name in ("post", "insurer"):
        assert [r.new_address for r in inboxes[name].received.values()] == [NEW_ADDRESS]
    assert inboxes["post"].attempts == 2 and inboxes["insurer"].attempts == 3


def test_other_revocations_start_no_notice(world) -> None:
    server, mailbox, _ = world
    card = server.authority.pki.holder("card")
    enrol(mailbox, card)
    revoke(server, card, "card_lost")
    assert mailbox.sync() == [] and mailbox.notices("taro") == []


def test_refusals(world) -> None:
    server, mailbox, _ = world
    holders = server.authority.pki
    with pytest.raises(MailboxRefused) as revoked:
        enrol(mailbox, holders.holder("revoked"))
    assert revoked.value.code == "revoked"
    with pytest.raises(MailboxRefused) as unknown:
        enrol(mailbox, holders.holder("card"), ("bank",))
    assert unknown.value.code == "unknown_business"
    enrol(mailbox, holders.holder("card"))
    challenge_id, challenge = mailbox.challenge()
    wrong = holders.holder("card").sign_key().sign(challenge, PKCS1v15(), hashes.SHA256())
    with pytest.raises(MailboxRefused) as bad:
        mailbox.login(challenge_id, der(holders.holder("card").auth_cert), wrong)
    assert bad.value.code == "bad_card"
    with pytest.raises(MailboxRefused) as used:  # a challenge is good for one attempt
        mailbox.login(challenge_id, der(holders.holder("card").auth_cert), wrong)
    assert used.value.code == "no_challenge"
    with pytest.raises(MailboxRefused) as stranger:
        login(mailbox, holders.holder("phone"))
    assert stranger.value.code == "not_a_member"
    with pytest.raises(MailboxRefused) as no_session:
        mailbox.approve("forged", "move-1", NEW_ADDRESS, "r")
    assert no_session.value.code == "no_session"
