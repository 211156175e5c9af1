"""The app's side of the download ceremony (harness/phone_download.py) on in-process virtual devices against the
real authority on 127.0.0.1: the card pulled at every APDU, the phone's link lost at every APDU, the authority
crashed inside every step. After each fault the same attempt is retried: it must complete, with no half-issued
certificate, never two live phones, and no try of the card's sign password lost."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from devices.virtual.card import VirtualCard
from devices.virtual.provisioning import State, state_of
from devices.virtual.reader import VirtualReader, open_virtual
from devices.virtual.slot import FaultPlan
from harness.authority import AuthorityClient, AuthorityConfig, AuthorityServer
from harness.channel import CardChannel
from harness.phone_download import CeremonyResult, PhoneDownloadApp, PhoneSecureElement, PinSource
from harness.safety import wrong_pin_like

pytestmark = pytest.mark.usefixtures("no_thread_leak")  # tests/conftest.py
PHONE_PINS = {"auth": "8642", "sign": "PHONEPASS7"}  # fixtures/cards/blank-phone.toml


@dataclass
class Rig:
    server: AuthorityServer
    card: VirtualReader
    phone: VirtualReader
    password: str = "TESTSIGN1"  # fixtures/cards/card.toml
    expendable: bool = True

    def new_phone(self) -> None:
        self.phone.slot.insert(VirtualCard.from_profile("blank-phone"))
        self.phone.power_on()

    def app(self, phone_id: str = "phone") -> PhoneDownloadApp:
        source = PinSource(lambda: self.password, self.expendable, {"sign": 3}, self.card.uri)
        return PhoneDownloadApp(CardChannel(self.card), PhoneSecureElement(CardChannel(self.phone)),
                                AuthorityClient(self.server.url, timeout=10), card_sign_password=source,
                                phone_pins=PHONE_PINS, phone_id=phone_id)

    def sign_tries(self) -> int:
        card = self.card.slot.card
        assert card is not None
        return card.pin("sign").tries_left

    def check_records(self, result: CeremonyResult) -> None:
        """One live phone (this one), two certificates per issued ceremony, none live elsewhere."""
        store = self.server.authority.store
        live = [b for b in store.bindings(result.card_serial) if b.status == "live"]
        assert [b.ceremony_id for b in live] == [result.ceremony]
        by_ceremony: dict[str, int] = {}
        for cert in store.all_certificates():
            by_ceremony[cert.ceremony_id] = by_ceremony.get(cert.ceremony_id, 0) + 1
            if cert.ceremony_id != result.ceremony:
                assert cert.revoked_at is not None
        assert set(by_ceremony.values()) <= {2}


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[Rig]:
    server = AuthorityServer(AuthorityConfig(tmp_path / "authority.sqlite3")).start()
    card, phone = open_virtual("virtual:card"), open_virtual("virtual:blank-phone")
    assert isinstance(card, VirtualReader) and isinstance(phone, VirtualReader)
    card.power_on()
    phone.power_on()
    try:
        yield Rig(server, card, phone)
    finally:
        server.stop()


def _reinsert(reader: VirtualReader, card: VirtualCard) -> None:
    reader.slot.arm(FaultPlan())
    if reader.slot.card is None:
        reader.slot.insert(card)
    reader.power_on()


def test_a_clean_ceremony_provisions_the_phone(rig: Rig) -> None:
    result = rig.app().run()
    assert result.ok, result
    assert state_of(rig.phone.slot.card.os) is State.PINS_SET
    assert set(result.certificates) == {"auth", "sign"}
    rig.check_records(result)


def test_the_card_pulled_at_every_apdu_is_recovered_by_a_retry(rig: Rig) -> None:
    before = rig.card.slot.apdu_count
    assert rig.app("count").run().ok
    card_apdus = rig.card.slot.apdu_count - before
    assert card_apdus >= 8  # SELECT, VERIFY, READ BINARY, SIGN and their EF selections
    for index in range(1, card_apdus + 1):
        rig.new_phone()
        app = rig.app(f"card-pull-{index}")
        card = rig.card.slot.card
        assert card is not None
        issued_before = rig.server.authority.store.counts()["certificates"]
        rig.card.slot.arm(FaultPlan(remove_at_apdu=index))
        stopped = app.run()
        assert (stopped.outcome, stopped.step) == ("card_removed", "card"), (index, stopped)
        assert rig.server.authority.store.counts()["certificates"] == issued_before
        _reinsert(rig.card, card)
        assert rig.sign_tries() == 5, f"APDU {index}: a pulled card lost a try"
        result = app.run()
        assert result.ok, (index, result)
        rig.check_records(result)


def test_the_phone_link_lost_at_every_apdu_is_recovered_by_a_retry(rig: Rig) -> None:
    before = rig.phone.slot.apdu_count
    assert rig.app("count").run().ok
    phone_apdus = rig.phone.slot.apdu_count - before
    assert phone_apdus >= 20  # keys, four certificates, two PINs
    outcomes = set()
    for index in range(1, phone_apdus + 1):
        rig.new_phone()
        phone = rig.phone.slot.card
        assert phone is not None
        app = rig.app(f"phone-lost-{index}")
        rig.phone.slot.arm(FaultPlan(remove_at_apdu=index))
        stopped = app.run()
        assert stopped.outcome == "phone_lost", (index, stopped)
        outcomes.add(stopped.step)
        _reinsert(rig.phone, phone)
        result = app.run()
        assert result.ok, (index, result)
        assert state_of(phone.os) is State.PINS_SET
        rig.check_records(result)
    assert outcomes == {"keys", "store", "pins"}


@pytest.mark.parametrize("point", ["before_commit", "after_commit"])
@pytest.mark.parametrize("step", ["open", "apply", "issue", "complete"])
def test_the_authority_crashed_inside_every_step_is_recovered_by_a_retry(rig: Rig, step: str, point: str) -> None:
    app = rig.app()
    rig.server.crash_during(step, point)
    stopped = app.run()
    assert stopped.outcome == "authority_unreachable", stopped
    assert rig.server.crashed.wait(5)
    rig.server.restart()
    result = app.run()
    assert result.ok, result
    counts = rig.server.authority.store.counts()
    assert (counts["ceremonies"], counts["certificates"], counts["bindings"]) == (1, 2, 1)
    rig.check_records(result)


def test_a_wrong_sign_password_is_sent_once_and_cancels_the_ceremony(rig: Rig) -> None:
    rig.password = wrong_pin_like("TESTSIGN1")
    result = rig.app().run()
    assert (result.outcome, result.tries_left) == ("wrong_pin", 4)
    assert rig.sign_tries() == 4
    assert rig.app().run().outcome == "wrong_pin" and rig.sign_tries() == 3  # one try per attempt, never more
    ceremony = rig.server.authority.store.ceremony(result.ceremony)
    assert ceremony is not None and ceremony.status == "cancelled"
    assert rig.server.authority.store.counts()["certificates"] == 0
    rig.password = "TESTSIGN1"
    assert rig.app().run().ok and rig.sign_tries() == 5


def test_the_pin_guard_keeps_a_guarded_cards_last_tries(rig: Rig) -> None:
    rig.expendable = False
    card = rig.card.slot.card
    assert card is not None
    card.pin("sign").tries_left = 3  # the reserve for the sign password is 3
    result = rig.app().run()
    assert result.outcome == "guard_refused", result
    assert card.pin("sign").tries_left == 3  # no VERIFY was sent


def test_a_finished_attempt_is_not_run_again(rig: Rig) -> None:
    app = rig.app()
    first = app.run()
    count = rig.card.slot.apdu_count
    assert app.run() is first and rig.card.slot.apdu_count == count
