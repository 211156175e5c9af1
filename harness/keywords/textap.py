"""Keywords for the 券面事項入力補助AP (text AP, JPKI-FACTS §5)."""

from __future__ import annotations

from robot.api import logger
from robotlibcore import keyword

from harness.fixtures import number_b
from harness.iso import tlv
from harness.iso.apdu import sw_hex
from harness.iso.redact import HolderValue, describe_my_number, my_number_check_digit_ok, revealed_value
from harness.jpki import AID_TEXT, EF_BASIC_FOUR, EF_MY_NUMBER, BasicFour, JpkiClient, decode_basic_four
from harness.pin_guard import COLLATION_NUMBERS

from . import privacy
from .context import LibraryComponent

TEXT_FILES = {"my_number": EF_MY_NUMBER, "basic_four": EF_BASIC_FOUR}


class TextApKeywords(LibraryComponent):
    @property
    def client(self) -> JpkiClient:
        return JpkiClient(self.ctx.require_channel())

    def _holder(self):
        if self.ctx.facts.holder is None:
            raise AssertionError(f"the expected holder of {self.ctx.device_name} is unknown (lab inventory)")
        return self.ctx.facts.holder

    @keyword
    def read_my_number(self) -> HolderValue:
        """Reads the 12-digit My Number from EF 0001 (the text PIN or 照合番号A must be verified).

        Returns a value that compares as the number but logs as ``<My Number: 12 digits, check digit
        valid, matches holder 'card'>``: the number itself never reaches the log (``--show-holder-data``
        shows it for synthetic holders).
        """
        return privacy.my_number_value(self.client.read_my_number(), self.ctx.facts.holder)

    @keyword
    def read_basic_four(self) -> HolderValue:
        """Reads and decodes name, address, birth date and sex from EF 0002.

        Returns a value that compares as the decoded fields but logs only their lengths and whether each
        matches the expected holder.
        """
        return privacy.basic_four_value(self.client.read_basic_four(), self.ctx.facts.holder)

    @keyword
    def read_text_file_status(self, file: str) -> str:
        """Tries to read ``my_number`` or ``basic_four`` and returns the READ BINARY status word."""
        client = self.client
        client.select_applet(AID_TEXT)
        client.select_ef(TEXT_FILES[file])
        return sw_hex(client.read_binary(0, 4, check=False).sw)

    @keyword
    def verify_collation_number(self, which: str) -> None:
        """VERIFYs 照合番号A (the My Number) or 照合番号B (birth date, expiry year, security code).

        The value comes from the expected holder's record; the VERIFY is guarded like a PIN (a wrong
        collation number costs the card a try too)."""
        key = which.strip().upper()
        if key not in COLLATION_NUMBERS:
            raise ValueError(f"unknown collation number {which!r}; known: A, B")
        holder = self._holder()
        value = holder.my_number if key == "A" else number_b(holder)
        result = self.ctx.guard().verify_value(COLLATION_NUMBERS[key], value, configured=True)
        if not result.ok:
            raise AssertionError(f"VERIFY 照合番号{key} answered {sw_hex(result.sw)}")

    @keyword
    def my_number_should_be_expected(self, number: HolderValue | str) -> None:
        """Fails unless ``number`` is the expected holder's My Number with a valid check digit.

        Logs ``My Number: 12 digits, check digit valid, matches holder 'card'``, never the number.
        """
        holder = self._holder()
        value = str(revealed_value(number))
        if value != holder.my_number:
            raise AssertionError(f"My Number read differs from holder '{holder.record}'s "
                                 f"({describe_my_number(value, holder.my_number, holder.record)})")
        if not my_number_check_digit_ok(value):
            raise AssertionError("My Number read has a wrong check digit")
        logger.info(f"My Number: {describe_my_number(value, holder.my_number, holder.record)}")

    @keyword
    def basic_four_should_be_expected(self, basic: HolderValue | BasicFour) -> None:
        """Fails unless the decoded basic-four data equal the expected holder's (the log names fields only)."""
        basic = revealed_value(basic)
        holder = self._holder()
        expected = BasicFour(holder.name, holder.address, holder.birth_date, holder.sex)
        if basic != expected:
            differing = [f for f in ("name", "address", "birth_date", "sex")
                         if getattr(basic, f) != getattr(expected, f)]
            raise AssertionError(f"basic-four fields differ from the expected holder: {', '.join(differing)}")
        if "\u3000" not in basic.name:
            raise AssertionError("name lacks the U+3000 between family and given name")
        if basic.sex not in ("1", "2", "9"):
            raise AssertionError("sex is not an ISO 5218 code (1, 2 or 9)")
        logger.info(privacy.basic_four_summary(basic, holder))

    @keyword
    def basic_four_offsets_should_point_at_fields(self) -> None:
        """Reads EF 0002 whole and checks that the DF21 offsets point at DF22, DF23, DF24 and DF25."""
        client = self.client
        client.select_applet(AID_TEXT)
        head = client.read_ef(EF_BASIC_FOUR, 4)
        data = client.read_ef(EF_BASIC_FOUR, tlv.der_total_length(head))
        decode_basic_four(data)
        outer = tlv.parse_one(data)
        header_len = len(data) - len(outer.value)
        children = outer.children()
        if children[0].tag != 0xDF21 or len(children[0].value) != 8:
            raise AssertionError("EF 0002 does not start with DF21 holding four offsets")
        offsets = [int.from_bytes(children[0].value[i : i + 2], "big") for i in range(0, 8, 2)]
        for offset, tag in zip(offsets, (0xDF22, 0xDF23, 0xDF24, 0xDF25), strict=True):
            found = tlv.read_tag(data, offset)[0]
            if found != tag:
                raise AssertionError(f"offset {offset} points at tag {found:X}, expected {tag:X}")
        if offsets[0] != header_len + 11:
            raise AssertionError(f"first offset {offsets[0]} does not follow DF21")

