"""ISO 14443-3/-4 Type B frames byte for byte: the virtual PICC's activation and block protocol
(devices/virtual/bridges/iso_dep_picc.py) and the ATQB/ATR facts of devices/nfc/iso14443.py.

Frames are written out from ISO/IEC 14443-3 §7 and 14443-4 §7 (PCB layouts below) and the card profile
fixtures/cards/card.toml, never produced by the code under test. The PICC is driven without a link: the
test hears its frames and answers each APDU with a literal R-APDU. No CRC_B is computed anywhere in the
project (nfcpy's UDP link carries frames without it), so none is tested here.

PCB: I-block ``0x02 | chaining 0x10 | CID follows 0x08 | NAD follows 0x04 | block number 0x01``;
R-block ``0xA2 | NAK 0x10 | CID 0x08 | block number``: R(ACK) A2/A3, R(NAK) B2/B3;
S-block ``0xC2`` DESELECT, ``0xF2`` WTX followed by the WTXM byte.
"""

from __future__ import annotations

from collections import deque

import pytest

from devices.base import ProtocolError
from devices.nfc.iso14443 import AtqbInfo, atr_from_atqb
from devices.virtual.bridges.iso_dep_picc import IsoDepPicc, State
from devices.virtual.card import VirtualCard
from devices.virtual.slot import CardSlot


def HEX(text: str) -> bytes:
    return bytes.fromhex(text)


# card.toml [contactless]: pupi 4A 50 4B 49, app_data 00 00 05 E0, bit_rates 106/212/424, max_frame 256, fwi 10
# ATQB = 50 | PUPI | app data | bit rates 0x80 (same both ways) | 0x11 (212) | 0x22 (424) = B3
#        | FSCI 8 (256 bytes) << 4 | protocol type 1 = 81 | FWI 10 << 4 | ADC 0 | FO CID 1 = A1
ATQB = HEX("50 4A504B49 000005E0 B3 81 A1")
SENSB_REQ = HEX("05 00 00")  # APf 05, AFI 00 (every family), PARAM 00 (REQB, N = 1)
# ATTRIB = 1D | PUPI | Param 1 00 | Param 2: 106 kbit/s both ways (b8-b5 0), FSDI 8 (256) | Param 3 01 | Param 4 CID
ATTRIB = HEX("1D 4A504B49 00 08 01 00")
SELECT_JPKI = HEX("00 A4 04 0C 0A D3 92 F0 00 26 01 00 00 00 01")


class ScriptedPicc(IsoDepPicc):
    """The PICC with the link cut: frames out are collected, each APDU gets the next scripted R-APDU."""

    def __init__(self, slot: CardSlot) -> None:
        super().__init__(slot)
        self.sent: list[bytes] = []
        self.apdus: list[bytes] = []
        self.answers: deque[bytes] = deque()
        self.hold = False  # True: keep the APDU running until the test calls on_result
        self.running = 0

    def _emit(self, frame: bytes, rate: int) -> None:
        self.sent.append(frame)

    def _submit(self, ticket: int, apdu: bytes) -> None:
        self.apdus.append(apdu)
        self.running = ticket
        if not self.hold:
            self.on_result(ticket, self.answers.popleft())

    def hear(self, frame: bytes) -> list[bytes]:
        """What the PICC sends back to ``frame`` (from one reader, at 106 kbit/s)."""
        before = len(self.sent)
        self.on_frame(106, frame, "reader")
        return self.sent[before:]


@pytest.fixture
def picc() -> ScriptedPicc:
    return ScriptedPicc(CardSlot(VirtualCard.from_profile("card")))


def activate(picc: ScriptedPicc, attrib: bytes = ATTRIB) -> None:
    assert picc.hear(SENSB_REQ) == [ATQB]
    assert picc.hear(attrib) == [bytes((attrib[8] & 0x0F,))]  # answer to ATTRIB: MBLI 0 << 4 | CID
    assert picc.state is State.ACTIVE


# -- activation ------------------------------------------------------------------------------------
def test_sensb_req_and_attrib_are_answered_as_the_profile_says(picc):
    activate(picc)
    assert picc.attrib == ATTRIB


def test_atqb_decodes_to_its_fields_and_the_atr_a_pcsc_reader_builds():
    info = AtqbInfo.parse(ATQB)
    assert (info.pupi, info.app_data) == (HEX("4A504B49"), HEX("000005E0"))
    assert (info.fsci, info.protocol_type, info.fwi, info.adc, info.fo) == (8, 1, 10, 0, 1)
    assert info.fsc == 256 and info.bit_rates == (106, 212, 424)
    # PC/SC Part 3: 3B | T0 0x88 (TD1 follows, 8 historical bytes) | TD1 80 | TD2 01 | app data | protocol info
    # | MBLI byte 00 | TCK = XOR of T0…last = 88^80^01^00^00^05^E0^B3^81^A1^00 = 7F (card.toml's contactless atr)
    assert atr_from_atqb(ATQB) == HEX("3B 88 80 01 000005E0 B381A1 00 7F")


@pytest.mark.parametrize("garbled", [ATQB[:11], HEX("51") + ATQB[1:]])  # one byte short; 51 is no ATQB's first byte
def test_a_garbled_atqb_is_a_protocol_error(garbled):
    with pytest.raises(ProtocolError, match="not an ATQB"):
        AtqbInfo.parse(garbled)


# -- I-blocks and their block numbers ----------------------------------------------------------------
def test_i_blocks_toggle_the_block_number_and_carry_the_apdus(picc):
    activate(picc)
    picc.answers += [HEX("90 00"), HEX("6A 82")]
    assert picc.hear(HEX("02") + SELECT_JPKI) == [HEX("02 90 00")]  # block 0 in, block 0 out
    assert picc.hear(HEX("03 00 B0 00 00 04")) == [HEX("03 6A 82")]  # block 1 in, block 1 out
    assert picc.apdus == [SELECT_JPKI, HEX("00 B0 00 00 04")]


def test_an_i_block_with_a_cid_is_answered_with_it(picc):
    activate(picc, HEX("1D 4A504B49 00 08 01 03"))  # Param 4: CID 3
    picc.answers.append(HEX("90 00"))
    assert picc.hear(HEX("0A 03") + SELECT_JPKI) == [HEX("0A 03 90 00")]  # PCB 02 | CID-following 08, CID 03


def test_chained_i_blocks_are_acked_and_run_as_one_apdu(picc):
    activate(picc)
    picc.answers.append(HEX("90 00"))
    assert picc.hear(HEX("12") + SELECT_JPKI[:7]) == [HEX("A2")]  # chaining bit 10, block 0: R(ACK) block 0
    assert picc.hear(HEX("03") + SELECT_JPKI[7:]) == [HEX("03 90 00")]
    assert picc.apdus == [SELECT_JPKI]


def test_a_long_answer_is_chained_in_frames_that_fit_the_readers_fsd(picc):
    # FSDI 0 in Param 2: FSD 16 bytes, less 2 of CRC_B and 1 of PCB: 13 bytes of INF a block
    activate(picc, HEX("1D 4A504B49 00 00 01 00"))
    answer = bytes(range(20)) + HEX("90 00")
    picc.answers.append(answer)
    assert picc.hear(HEX("02 00 B0 00 00 14")) == [HEX("12") + answer[:13]]  # chaining, block 0
    assert picc.hear(HEX("A3")) == [HEX("03") + answer[13:]]  # R(ACK) block 1: the last block, block 1


# -- R-blocks: acknowledgements and retransmissions (ISO 14443-4 §7.5.4 rules 11, 12) ------------------
def test_r_ack_and_r_nak_of_the_current_block_get_the_last_block_again(picc):
    activate(picc)
    picc.answers.append(HEX("90 00"))
    assert picc.hear(HEX("02") + SELECT_JPKI) == [HEX("02 90 00")]
    assert picc.hear(HEX("A2")) == [HEX("02 90 00")]  # R(ACK) block 0: rule 11
    assert picc.hear(HEX("B2")) == [HEX("02 90 00")]  # R(NAK) block 0: rule 11
    assert picc.hear(HEX("02") + SELECT_JPKI) == [HEX("02 90 00")]  # the same I-block again: answered, not run
    assert len(picc.apdus) == 1


def test_r_nak_of_the_other_block_number_is_answered_with_r_ack(picc):
    activate(picc)
    picc.answers.append(HEX("90 00"))
    assert picc.hear(HEX("02") + SELECT_JPKI) == [HEX("02 90 00")]
    assert picc.hear(HEX("B3")) == [HEX("A2")]  # R(NAK) block 1, PICC at block 0: R(ACK) block 0 (rule 12)


# -- S-blocks ------------------------------------------------------------------------------------------
def test_a_busy_picc_asks_for_more_time_with_s_wtx(picc):
    activate(picc)
    picc.hold = True
    assert picc.hear(HEX("02") + SELECT_JPKI) == []  # the APDU runs: nothing yet
    assert picc.hear(HEX("B2")) == [HEX("F2 01")]  # the reader's R(NAK): S(WTX) with WTXM 1
    assert picc.hear(HEX("F2 01")) == []  # the reader grants it (S(WTX) response, WTXM 1)
    picc.on_result(picc.running, HEX("90 00"))
    assert picc.sent[-1] == HEX("02 90 00")


def test_s_deselect_is_answered_and_ends_the_session(picc):
    activate(picc)
    assert picc.hear(HEX("C2")) == [HEX("C2")]
    assert picc.state is State.HALT


# -- garbled blocks: ISO 14443-4 §7.5.4: an invalid block is ignored (no answer) ----------------------
@pytest.mark.parametrize("garbled", [HEX("42 90 00"), HEX("E2"), HEX("A6")])
def test_a_block_with_an_invalid_pcb_is_not_answered(picc, garbled):
    # 42: b8-b7 = 01 is no block type; E2: an S-block with b6-b5 = 10 (RFU); A6: an R-block with b3 set (must be 0)
    activate(picc)
    ignored = picc.stats.ignored_frames
    assert picc.hear(garbled) == []
    assert picc.stats.ignored_frames == ignored + 1 and picc.state is State.ACTIVE
