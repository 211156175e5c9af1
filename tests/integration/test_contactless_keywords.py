"""The contactless keywords (parameters, chaining, WTX, link statistics, faults) on nfcpy's real reader side
in front of the virtual Type B PICC on 127.0.0.1; and their refusal on a device without one."""

import pytest
from robot.api import SkipExecution

from devices import CardRemoved, DeviceError
from devices.virtual.rig import FaultUnsupported
from harness.keywords.card import CardKeywords
from harness.keywords.contactless import ContactlessKeywords
from harness.keywords.context import LibraryContext
from harness.keywords.device import DeviceKeywords
from harness.keywords.faults import FaultKeywords
from harness.keywords.transport import TransportKeywords

pytestmark = pytest.mark.nfc


@pytest.fixture
def keywords():
    ctx = LibraryContext()
    device, contactless = DeviceKeywords(ctx), ContactlessKeywords(ctx)
    device.open_device("virtual:card?via=nfc")
    yield ctx, device, contactless, CardKeywords(ctx)
    device.close_device()


def test_parameter_keywords(keywords):
    _, _, kw, _ = keywords
    params = kw.get_contactless_parameters()
    assert params["type"] == "B" and params["extended_apdu"] == "yes"
    kw.contactless_parameters_should_be(type="B", max_frame="256", fwi="10|13")
    kw.max_frame_size_should_be(256)
    kw.contactless_atr_should_match_atqb()
    with pytest.raises(AssertionError, match="fwi: expected 13, got 10"):
        kw.contactless_parameters_should_be(fwi="13")
    with pytest.raises(AssertionError, match="not reported"):
        kw.contactless_parameters_should_be(colour="blue")
    with pytest.raises(AssertionError):
        kw.max_frame_size_should_be(128)


def test_chaining_wtx_and_field_keywords(keywords):
    ctx, _, kw, card = keywords
    kw.require_virtual_contactless_card()
    assert kw.has_virtual_contactless_card()
    card.verify_pin("auth")
    card.read_certificate("auth")
    kw.last_exchange_should_have_used_chaining("response")
    kw.frames_should_respect_frame_sizes()
    with pytest.raises(AssertionError, match="not chained"):
        kw.last_exchange_should_have_used_chaining("command")
    with pytest.raises(AssertionError, match="S\\(WTX\\)"):
        kw.last_exchange_should_have_used_wtx()
    faults = FaultKeywords(ctx)
    faults.delay_card_signatures(500)
    card.sign_data("auth", "challenge")
    kw.last_exchange_should_have_used_wtx()
    faults.delay_card_signatures(0)
    faults.inject_link_fault(lose_responses=1)
    card.select_jpki_ap()
    kw.link_statistic_should_be_at_least("naks_in", 1)
    kw.reset_link_statistics()
    assert kw.get_link_statistics()["naks_in"] == 0
    faults.pull_card_during_apdu(1)
    with pytest.raises(CardRemoved):
        card.select_jpki_ap()
    faults.insert_card()
    atr = TransportKeywords(ctx).reconnect_card()
    assert atr == ctx.atr.hex(" ").upper()
    card.select_jpki_ap()
    kw.last_exchange_should_not_have_used_chaining()


def test_fault_keywords_refuse_a_device_without_a_virtual_picc():
    ctx = LibraryContext()
    device, kw = DeviceKeywords(ctx), ContactlessKeywords(ctx)
    device.open_device("virtual:card")
    try:
        assert not kw.has_virtual_contactless_card()
        with pytest.raises(SkipExecution, match="via=nfc"):
            kw.require_virtual_contactless_card()
        with pytest.raises(DeviceError, match="not a contactless device"):
            kw.get_contactless_parameters()
        with pytest.raises(FaultUnsupported, match="virtual:card cannot inject lose_responses"):
            FaultKeywords(ctx).inject_link_fault(lose_responses=1)
    finally:
        device.close_device()
