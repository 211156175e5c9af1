"""The host side of the JPKI AP and the text AP (JPKI-FACTS §1-§5).

Every call goes through a :class:`~harness.channel.CardChannel`, so it is traced
and works the same on every backend.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from harness.channel import CardChannel
from harness.iso import tlv
from harness.iso.apdu import CommandApdu, ResponseApdu, sw_hex

AID_JPKI = bytes.fromhex("D392F000260100000001")
AID_TEXT = bytes.fromhex("D3921000310001010408")
AID_VISUAL = bytes.fromhex("D3921000310001010402")
AID_JUKI = bytes.fromhex("D3921000310001010401")
AID_COMMON = bytes.fromhex("D3921000310001010100")
APPLETS = {"jpki": AID_JPKI, "text": AID_TEXT, "visual": AID_VISUAL, "juki": AID_JUKI, "common": AID_COMMON}

EF_SIGN_CERT, EF_SIGN_CA, EF_TOKEN, EF_AUTH_CERT, EF_AUTH_CA = 0x0001, 0x0002, 0x0006, 0x000A, 0x000B
EF_AUTH_KEY, EF_AUTH_PIN, EF_SIGN_KEY, EF_SIGN_PIN = 0x0017, 0x0018, 0x001A, 0x001B
EF_MY_NUMBER, EF_BASIC_FOUR, EF_TEXT_PIN = 0x0001, 0x0002, 0x0011

CERTIFICATES = {"auth": EF_AUTH_CERT, "sign": EF_SIGN_CERT, "auth_ca": EF_AUTH_CA, "sign_ca": EF_SIGN_CA}
KEYS = {"auth": EF_AUTH_KEY, "sign": EF_SIGN_KEY}
DER_HEADER_MAX = 6  # 30 84 LL LL LL LL covers any certificate


class PinKind(Enum):
    """The PINs a host verifies: applet and PIN EF."""

    AUTH = ("jpki", EF_AUTH_PIN)
    SIGN = ("jpki", EF_SIGN_PIN)
    TEXT = ("text", EF_TEXT_PIN)

    @property
    def applet(self) -> str:
        return self.value[0]

    @property
    def fid(self) -> int:
        return self.value[1]

    @classmethod
    def named(cls, name: str) -> PinKind:
        try:
            return cls[name.strip().upper()]
        except KeyError:
            raise ValueError(f"unknown PIN '{name}'; known: auth, sign, text") from None


class CardStatusError(Exception):
    """The card answered with an unexpected status word."""

    def __init__(self, action: str, response: ResponseApdu) -> None:
        super().__init__(f"{action} failed: {sw_hex(response.sw)} {response.sw_name}")
        self.response = response

    @property
    def sw(self) -> int:
        return self.response.sw


@dataclass(frozen=True)
class VerifyResult:
    sw: int

    @property
    def ok(self) -> bool:
        return self.sw == 0x9000

    @property
    def blocked(self) -> bool:
        return self.sw == 0x6984

    @property
    def tries_left(self) -> int | None:
        return self.sw & 0x0F if self.sw & 0xFFF0 == 0x63C0 else None


@dataclass(frozen=True)
class BasicFour:
    """基本4情報 from the text AP's EF 0002."""

    name: str
    address: str
    birth_date: str
    sex: str


class JpkiClient:
    """Select, read, query tries, sign: the operations a relying party's terminal performs (PINs: ``PinGuard``)."""

    def __init__(self, channel: CardChannel, max_le: int | None = None, *, header_first: bool | None = None) -> None:
        self.channel = channel
        self.le_limit = max_le  # narrower than the reader allows, e.g. to test short-APDU hosts
        self.header_first = header_first  # DER reads: header, then exactly its length; None: on contactless readers

    # -- plumbing -----------------------------------------------------------
    def _send(self, cmd: CommandApdu, action: str, *, check: bool = True, note: str = "") -> ResponseApdu:
        response = self.channel.transmit(cmd, note)
        if check and not response.ok:
            raise CardStatusError(action, response)
        return response

    def select_applet(self, name_or_aid: str | bytes, *, check: bool = True) -> ResponseApdu:
        aid = APPLETS[name_or_aid] if isinstance(name_or_aid, str) else name_or_aid
        return self._send(CommandApdu(0x00, 0xA4, 0x04, 0x0C, aid), f"SELECT AID {aid.hex().upper()}", check=check)

    def select_jpki(self) -> ResponseApdu:
        return self.select_applet(AID_JPKI)

    def select_ef(self, fid: int, *, check: bool = True) -> ResponseApdu:
        return self._send(CommandApdu(0x00, 0xA4, 0x02, 0x0C, fid.to_bytes(2, "big")), f"SELECT EF {fid:04X}",
                          check=check)

    def read_binary(self, offset: int, le: int, *, check: bool = True) -> ResponseApdu:
        cmd = CommandApdu(0x00, 0xB0, (offset >> 8) & 0x7F, offset & 0xFF, le=le)
        return self._send(cmd, f"READ BINARY at {offset}", check=check)

    @property
    def max_le(self) -> int:
        caps = self.channel.capabilities
        allowed = caps.max_response if caps.extended_apdu else min(caps.max_response, 256)
        return min(allowed, self.le_limit) if self.le_limit else allowed

    # -- files ----------------------------------------------------------------
    def read_ef(self, fid: int, length: int) -> bytes:
        """Read ``length`` bytes of an EF in as few APDUs as the reader allows."""
        self.select_ef(fid)
        data = b""
        while len(data) < length:
            chunk = self.read_binary(len(data), min(self.max_le, length - len(data))).data
            if not chunk:
                break
            data += chunk
        return data

    @property
    def reads_header_first(self) -> bool:
        """Whether a DER read asks for the header alone first: on the air every byte costs (the EF is 2 KB,
        zero-filled past the certificate), and one more short APDU costs less than the padding."""
        if self.header_first is not None:
            return self.header_first
        return self.channel.capabilities.contactless

    def read_der_ef(self, fid: int) -> bytes:
        """Read the DER object at the start of an EF: its header tells the length (JPKI-FACTS §2).

        On a contactless reader the first READ BINARY asks for the header only (6 bytes cover any
        length) and the next ones for exactly the rest, so no padding goes over the air. Elsewhere the
        first asks for as much as the reader allows, so with extended APDUs a whole certificate comes in
        one exchange (the padding costs nothing in-process or on vpcd's link).
        """
        self.select_ef(fid)
        first_le = min(self.max_le, DER_HEADER_MAX) if self.reads_header_first else self.max_le
        first = self.read_binary(0, first_le).data
        if len(first) < DER_HEADER_MAX and len(first) < 2:
            raise CardStatusError(f"EF {fid:04X} holds no DER object", ResponseApdu(first, 0x90, 0x00))
        total = tlv.der_total_length(first[:DER_HEADER_MAX])
        data = first[:total]
        while len(data) < total:
            chunk = self.read_binary(len(data), min(self.max_le, total - len(data))).data
            if not chunk:
                raise CardStatusError(f"EF {fid:04X} ended before its DER length", ResponseApdu(b"", 0x90, 0))
            data += chunk
        return data[:total]

    def read_certificate(self, which: str) -> bytes:
        """``auth``, ``sign``, ``auth_ca`` or ``sign_ca`` from the JPKI AP (selected by this call)."""
        if which not in CERTIFICATES:
            raise ValueError(f"unknown certificate '{which}'; known: {', '.join(CERTIFICATES)}")
        return self.read_der_ef(CERTIFICATES[which])

    def read_token_label(self) -> str:
        data = self.read_ef(EF_TOKEN, 32)
        return data.rstrip(b" \x00").decode("ascii", errors="replace")

    # -- PINs -----------------------------------------------------------------
    def _select_pin(self, kind: PinKind) -> None:
        self.select_applet(kind.applet)
        self.select_ef(kind.fid)

    def query_tries(self, kind: PinKind, *, select: bool = True) -> int:
        """Tries left, from an empty VERIFY (JPKI-FACTS §3: always ``63Cx``, even after success)."""
        if select:
            self._select_pin(kind)
        response = self._send(CommandApdu(0x00, 0x20, 0x00, 0x80), f"query {kind.name} tries", check=False)
        if response.sw & 0xFFF0 != 0x63C0:
            raise CardStatusError(f"query {kind.name} tries", response)
        return response.sw2 & 0x0F

    # VERIFY with a PIN and CHANGE REFERENCE DATA are built only by the guarded client
    # (harness.pin_guard.PinGuard): a wrong PIN costs a real card a try it may not have.

    # -- signing --------------------------------------------------------------
    def sign(self, key: str, digest_info: bytes, *, check: bool = True) -> ResponseApdu:
        """``80 2A 00 80`` over a DigestInfo with the ``auth`` or ``sign`` key (JPKI-FACTS §4)."""
        if key not in KEYS:
            raise ValueError(f"unknown key '{key}'; known: auth, sign")
        self.select_jpki()
        self.select_ef(KEYS[key])
        return self._send(CommandApdu(0x80, 0x2A, 0x00, 0x80, digest_info, le=256), f"SIGN with {key} key",
                          check=check)

    # -- text AP ----------------------------------------------------------------
    def read_my_number(self) -> str:
        """EF 0001 of the text AP (needs PIN 0011 or 照合番号A verified): ``FF 10 0C`` + 12 digits."""
        self.select_applet(AID_TEXT)
        data = self.read_ef(EF_MY_NUMBER, 17)
        item = tlv.parse_one(data)
        if item.tag != 0xFF10:
            raise ValueError(f"My Number EF starts with tag {item.tag:X}, expected FF10")
        return item.value.decode("ascii")

    def read_basic_four(self) -> BasicFour:
        """EF 0002 of the text AP: name, address, birth date, sex (JPKI-FACTS §5)."""
        self.select_applet(AID_TEXT)
        head = self.read_ef(EF_BASIC_FOUR, 4)
        total = tlv.der_total_length(head)
        data = self.read_ef(EF_BASIC_FOUR, total)
        return decode_basic_four(data)


def decode_basic_four(data: bytes) -> BasicFour:
    outer = tlv.parse_one(data)
    if outer.tag != 0xFF20:
        raise ValueError(f"basic-four EF starts with tag {outer.tag:X}, expected FF20")
    fields = {item.tag: item.value for item in outer.children()}
    missing = [f"{tag:X}" for tag in (0xDF22, 0xDF23, 0xDF24, 0xDF25) if tag not in fields]
    if missing:
        raise ValueError(f"basic-four EF lacks {', '.join(missing)}")
    return BasicFour(
        name=fields[0xDF22].decode("utf-8"),
        address=fields[0xDF23].decode("utf-8"),
        birth_date=fields[0xDF24].decode("ascii"),
        sex=fields[0xDF25].decode("ascii"),
    )
