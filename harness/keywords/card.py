"""Keywords for the JPKI AP: selection, files, PINs, signing (JPKI-FACTS §1-§4)."""

from __future__ import annotations

from robot.api import logger
from robotlibcore import keyword

from devices.virtual.profile import load_profile
from harness import pki
from harness.apdu import CommandApdu, ResponseApdu, parse_hex, sw_hex
from harness.jpki import APPLETS, JpkiClient, PinKind
from harness.safety import PinGuard, new_pin_like, wrong_pin_like

from . import privacy
from .context import LibraryComponent


def _sw_value(expected: str | int) -> int:
    return expected if isinstance(expected, int) else int(str(expected).replace(" ", ""), 16)


class CardKeywords(LibraryComponent):
    @property
    def client(self) -> JpkiClient:
        return JpkiClient(self.ctx.require_channel())

    def guard(self, client: JpkiClient) -> PinGuard:
        facts = self.ctx.facts
        return PinGuard(client, expendable=facts.expendable, reserve=facts.pin_reserve, device=self.ctx.device_name,
                        trusted=self.ctx.trusted_pins)

    # -- raw exchanges ----------------------------------------------------------
    @keyword
    def send_apdu(self, apdu: str) -> ResponseApdu:
        """Sends a command APDU given as hex (``00 A4 04 0C 0A D3 92 …``) and returns the response.

        The bytes go as given, also with an Lc/Le that does not match (to test the card's ``6700``);
        a command shorter than its 4-byte header is refused (``MalformedApdu``) before it is sent."""
        return self.ctx.require_channel().transmit(parse_hex(apdu), wrong_length_ok=True)

    @keyword
    def status_word_should_be(self, response: ResponseApdu, expected: str) -> None:
        """Fails unless ``response`` ended with the status word ``expected`` (hex, e.g. ``6982``)."""
        if response.sw != _sw_value(expected):
            raise AssertionError(
                f"expected SW {expected.upper()} but got {sw_hex(response.sw)} ({response.sw_name})"
            )

    @keyword
    def response_data_length_should_be(self, response: ResponseApdu, length: int) -> None:
        """Fails unless the response carried exactly ``length`` data bytes."""
        if len(response.data) != int(length):
            raise AssertionError(f"expected {length} data bytes, got {len(response.data)}")

    # -- selection ----------------------------------------------------------------
    @keyword
    def select_applet(self, applet: str, p2: str = "0C") -> ResponseApdu:
        """SELECTs an applet by name (``jpki``, ``text``, ``visual``, ``juki``, ``common``) or AID hex.

        Returns the response without judging it.
        """
        aid = APPLETS.get(applet) or parse_hex(applet)
        return self.ctx.require_channel().transmit(CommandApdu(0x00, 0xA4, 0x04, int(p2, 16), aid))

    @keyword
    def select_jpki_ap(self) -> None:
        """SELECTs the JPKI AP and fails unless the card answers 9000."""
        self.client.select_jpki()

    @keyword
    def select_ef(self, fid: str) -> ResponseApdu:
        """SELECTs an EF of the current applet by its 2-byte FID (hex); returns the response."""
        return self.client.select_ef(int(fid, 16), check=False)

    @keyword
    def read_binary(self, offset: int, le: int) -> ResponseApdu:
        """READ BINARY of the current EF at ``offset`` with ``le``; returns the response unjudged."""
        return self.client.read_binary(int(offset), int(le), check=False)

    # -- files ----------------------------------------------------------------
    @keyword
    def read_token_label(self) -> str:
        """Reads EF 0006 of the JPKI AP and returns the label without its padding."""
        self.client.select_jpki()
        return self.client.read_token_label()

    @keyword
    def read_certificate(self, which: str) -> bytes:
        """Reads ``auth``, ``sign``, ``auth_ca`` or ``sign_ca`` in as few APDUs as the reader allows."""
        channel = self.ctx.require_channel()
        before = channel.apdu_count
        self.client.select_jpki()
        der = self.client.read_certificate(which)
        logger.info(f"{which} certificate: {len(der)} bytes in {channel.apdu_count - before} APDUs")
        privacy.register_certificate_holder(der, self.ctx.facts.holder)
        return der

    @keyword
    def read_certificate_with_short_apdus(self, which: str) -> bytes:
        """Reads a certificate with Le ≤ 256 per APDU, as a host behind a short-APDU reader does."""
        client = JpkiClient(self.ctx.require_channel(), max_le=256)
        client.select_jpki()
        der = client.read_certificate(which)
        privacy.register_certificate_holder(der, self.ctx.facts.holder)
        return der

    # -- PINs -----------------------------------------------------------------
    @keyword
    def query_pin_tries(self, pin: str) -> int:
        """Tries left for ``auth``, ``sign`` or ``text``, from an empty VERIFY."""
        return self.client.query_tries(PinKind.named(pin))

    @keyword
    def query_pin_status(self, pin: str, select: bool = True) -> str:
        """Sends the empty VERIFY for ``pin`` and returns its status word as hex (even when not 63Cx)."""
        kind = PinKind.named(pin)
        client = self.client
        if select:
            client.select_applet(kind.applet)
            client.select_ef(kind.fid)
        response = self.ctx.require_channel().transmit(CommandApdu(0x00, 0x20, 0x00, 0x80))
        return sw_hex(response.sw)

    @keyword
    def verify_pin(self, pin: str) -> None:
        """VERIFYs the device's configured ``auth``/``sign``/``text`` PIN and fails unless 9000.

        The PIN comes from the environment, the lab inventory or the virtual profile, never a suite.
        """
        kind = PinKind.named(pin)
        result = self.guard(self.client).verify(kind, self.ctx.pin(kind.name.lower()))
        if not result.ok:
            raise AssertionError(f"VERIFY {pin} answered {sw_hex(result.sw)}, expected 9000")

    @keyword
    def verify_pin_status(self, pin: str) -> str:
        """VERIFYs the configured PIN and returns the status word as hex without judging it."""
        kind = PinKind.named(pin)
        return sw_hex(self.guard(self.client).verify(kind, self.ctx.pin(kind.name.lower())).sw)

    @keyword
    def verify_wrong_pin(self, pin: str) -> str:
        """VERIFYs a wrong PIN of the right format and returns the status word (``63Cx``/``6984``).

        Guarded: on a card not marked expendable, it refuses when the failure would leave fewer tries
        than the reserve (auth 2, sign 3).
        """
        kind = PinKind.named(pin)
        client = self.client
        self.guard(client).check(kind)
        return sw_hex(client.verify(kind, wrong_pin_like(self.ctx.pin(kind.name.lower())), select=False).sw)

    @keyword
    def verify_pin_of_another_profile(self, pin: str, profile: str) -> str:
        """VERIFYs the PIN that virtual profile ``profile`` uses (e.g. the card's PIN on a phone).

        Returns the status word; guarded like any VERIFY that may fail.
        """
        kind = PinKind.named(pin)
        other = load_profile(profile).pins[kind.name.lower()].value
        client = self.client
        self.guard(client).check(kind)
        return sw_hex(client.verify(kind, other, select=False).sw)

    @keyword
    def change_pin_to_new_value(self, pin: str) -> str:
        """VERIFYs the PIN, then CHANGE REFERENCE DATA to a new value of the same format.

        Returns the status word of the change. Later keywords use the new value until
        ``Restore Original PIN``.
        """
        kind = PinKind.named(pin)
        name = kind.name.lower()
        current = self.ctx.pin(name)
        new = new_pin_like(current)
        response = self.client.change_pin(kind, current, new)
        if response.ok:
            self.ctx.changed_pins[name] = new
        return sw_hex(response.sw)

    @keyword
    def change_pin_without_verify(self, pin: str) -> str:
        """Sends CHANGE REFERENCE DATA without a prior VERIFY; returns the status word."""
        kind = PinKind.named(pin)
        client = self.client
        client.select_applet(kind.applet)
        client.select_ef(kind.fid)
        new = new_pin_like(self.ctx.pin(kind.name.lower()))
        response = self.ctx.require_channel().transmit(CommandApdu(0x00, 0x24, 0x01, 0x80, new.encode()))
        return sw_hex(response.sw)

    @keyword
    def change_pin_to_malformed_value(self, pin: str) -> str:
        """VERIFYs the PIN, then tries a new value that breaks the PIN format; returns the status word."""
        kind = PinKind.named(pin)
        malformed = "12AB" if kind is not PinKind.SIGN else "abc"
        response = self.client.change_pin(kind, self.ctx.pin(kind.name.lower()), malformed)
        return sw_hex(response.sw)

    @keyword
    def restore_original_pin(self, pin: str) -> None:
        """Changes a PIN changed by ``Change PIN To New Value`` back to the configured value."""
        kind = PinKind.named(pin)
        name = kind.name.lower()
        if name not in self.ctx.changed_pins:
            return
        current = self.ctx.changed_pins.pop(name)
        response = self.client.change_pin(kind, current, self.ctx.pin(name))
        if not response.ok:
            self.ctx.changed_pins[name] = current
            raise AssertionError(f"restoring the {name} PIN answered {sw_hex(response.sw)}")

    # -- signing ----------------------------------------------------------------
    @keyword
    def sign_data(self, key: str, data: str | bytes, algorithm: str = "sha256") -> bytes:
        """Signs the DigestInfo of ``data`` with the ``auth`` or ``sign`` key; fails unless 9000."""
        raw = data.encode("utf-8") if isinstance(data, str) else data
        response = self.client.sign(key, pki.digest_info(raw, algorithm))
        return response.data

    @keyword
    def sign_data_status(self, key: str, data: str | bytes = "challenge") -> str:
        """Attempts the signature and returns the status word as hex (e.g. ``6982`` without the PIN)."""
        raw = data.encode("utf-8") if isinstance(data, str) else data
        return sw_hex(self.client.sign(key, pki.digest_info(raw), check=False).sw)

    @keyword
    def sign_raw_data_field(self, key: str, data_hex: str) -> str:
        """Sends the signing command with an arbitrary data field (not a DigestInfo); returns the SW."""
        return sw_hex(self.client.sign(key, parse_hex(data_hex), check=False).sw)

