"""Faults on every backend: the card pulled at each APDU of a certificate read and of a signature,
a stall beyond the reader's timeout. Each ends in a typed error, never a hang, and the device recovers.
"""

import time

import pytest
from conftest import VIRTUAL_BACKENDS

from devices import CardRemoved, DeviceError, DeviceTimeout, NoCard, open_device
from devices.virtual.card import VirtualCard
from devices.virtual.rig import rig_of
from devices.virtual.slot import FaultPlan
from harness.channel import CardChannel
from harness.jpki import JpkiClient, PinKind
from harness.pin_guard import PinGuard
from harness.pki import checks

BACKENDS = [*VIRTUAL_BACKENDS, "virtual:card?via=kiosk&transport=rfc2217"]
CERT_READ_APDUS = 3  # SELECT AP, SELECT EF, one extended READ BINARY
SIGN_APDUS = 6  # SELECT AP, SELECT PIN EF, VERIFY, SELECT AP, SELECT key EF, SIGN


@pytest.fixture(params=BACKENDS)
def backend(request):
    reader = open_device(request.param)
    reader.wait_for_card(5)
    reader.power_on()
    yield reader
    reader.close()


def fresh_card(reader) -> None:
    rig_of(reader).slot.insert(VirtualCard.from_profile("card"))
    reader.wait_for_card(5)
    reader.power_on()


def read_cert(client: JpkiClient) -> bytes:
    client.select_jpki()
    return client.read_certificate("auth")


def sign(client: JpkiClient) -> bytes:
    assert PinGuard(client, expendable=True, device=f"faults-{id(client)}").verify(PinKind.AUTH, "2580").ok
    return client.sign("auth", checks.digest_info(b"fault")).data


@pytest.mark.parametrize(("operation", "apdus"), [(read_cert, CERT_READ_APDUS), (sign, SIGN_APDUS)])
def test_card_pulled_at_each_apdu_is_reported_and_recovered(backend, operation, apdus):
    channel = CardChannel(backend)
    client = JpkiClient(channel)
    for index in range(1, apdus + 1):
        rig_of(backend).slot.arm(FaultPlan(remove_at_apdu=index))
        with pytest.raises((CardRemoved, NoCard)):
            operation(client)
        assert "CardRemoved" in channel.trace.as_text() or "NoCard" in channel.trace.as_text()
        assert not rig_of(backend).slot.present
        rig_of(backend).slot.arm(FaultPlan())
        fresh_card(backend)
        assert operation(client)  # the next attempt on a re-inserted card works
        channel.trace.clear()
    assert rig_of(backend).slot.card.pin("auth").tries_left == 3  # no pull ever cost a PIN try


def test_stall_beyond_the_reader_timeout_is_a_timeout_not_a_hang():
    reader = open_device("virtual:card?timeout=1")
    reader.power_on()
    client = JpkiClient(CardChannel(reader))
    rig_of(reader).slot.arm(FaultPlan(stall_at_apdu=2, stall_seconds=3.0))
    start = time.monotonic()
    with pytest.raises(DeviceTimeout, match="no answer within 1 s"):
        read_cert(client)
    assert time.monotonic() - start < 2.5
    time.sleep(2.2)  # the stalled APDU completes in the card; a power cycle then starts clean
    reader.power_off()
    reader.power_on()
    assert read_cert(client)
    reader.close()


def test_every_error_is_one_line_without_pin_bytes():
    reader = open_device("virtual:card")
    reader.power_on()
    rig_of(reader).slot.arm(FaultPlan(remove_at_apdu=3))
    client = JpkiClient(CardChannel(reader))
    with pytest.raises(DeviceError) as excinfo:
        sign(client)
    message = str(excinfo.value)
    assert "\n" not in message and "2580" not in message and "32 35 38 30" not in message.upper()
    assert "00 20 00 80 04 ****" in client.channel.trace.as_text()
