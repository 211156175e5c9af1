"""Keywords for the JPKI AP: selection, files, PINs, signing (JPKI-FACTS §1-§4)."""

from __future__ import annotations

from robot.api import logger
from robotlibcore import keyword

from devices.virtual.rig import profile_facts
from harness.iso.apdu import CommandApdu, ResponseApdu, parse_hex, sw_hex
from harness.jpki import APPLETS, JpkiClient, PinKind
from harness.pin_guard import PinGuard, new_pin_like, refuse_raw_secret
from harness.pki import checks

from . import privacy
from .context import LibraryComponent


def _sw_value(expected: str | int) -> int:
    return expected if isinstance(expected, int) else int(str(expected).replace(" ", ""), 16)


class CardKeywords(LibraryComponent):
    @property
    def client(self) -> JpkiClient:
        return JpkiClient(self.ctx.require_channel())

    @property
    def guard(self) -> PinGuard:
        return self.ctx.guard()

    # -- raw exchanges ----------------------------------------------------------
    @keyword
    def send_apdu(self, apdu: str) -> ResponseApdu:
        """Sends a command APDU given as hex (``00 A4 04 0C 0A D3 92 …``) and returns the response.

        The bytes go as given, also with an Lc/Le that does not match (to test the card's ``6700``);
        a command shorter than its 4-byte header is refused (``MalformedApdu``) before it is sent.
        VERIFY and CHANGE REFERENCE DATA with data are refused: Robot logs keyword arguments, so PINs go
        through keywords that take the PIN's name. The empty VERIFY (retry query) is sent."""
        command = parse_hex(apdu)
        refuse_raw_secret(command)
        return self.ctx.require_channel().transmit(command, wrong_length_ok=True)

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
        return self.guard.query_tries(PinKind.named(pin))

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
        Guarded: on a card not marked expendable nothing is sent that could take the PIN below its reserve,
        and a configured PIN the card refused once is not sent again.
        """
        result = self.guard.verify_configured(PinKind.named(pin))
        if not result.ok:
            left = f"; {result.tries_left} tries left" if result.tries_left is not None else ""
            raise AssertionError(f"VERIFY {pin} answered {sw_hex(result.sw)}, expected 9000{left}")

    @keyword
    def verify_pin_status(self, pin: str) -> str:
        """VERIFYs the configured PIN (guarded) and returns the status word as hex without judging it."""
        return sw_hex(self.guard.verify_configured(PinKind.named(pin)).sw)

    @keyword
    def verify_wrong_pin(self, pin: str) -> str:
        """VERIFYs a wrong PIN of the right format and returns the status word (``63Cx``/``6984``).

        Guarded: on a card not marked expendable, the configured PIN is proven first (so the counter can be
        restored) and the wrong try is refused when it would leave fewer tries than the reserve (auth 2, sign 3).
        """
        return sw_hex(self.guard.verify_wrong(PinKind.named(pin)).sw)

    @keyword
    def verify_pin_of_another_profile(self, pin: str, profile: str) -> str:
        """VERIFYs the PIN that virtual profile ``profile`` uses (e.g. the card's PIN on a phone).

        Returns the status word; guarded like any VERIFY that may fail.
        """
        kind = PinKind.named(pin)
        other = profile_facts(profile).pins[kind.name.lower()]
        return sw_hex(self.guard.verify_other(kind, other).sw)

    @keyword
    def change_pin_to_new_value(self, pin: str) -> str:
        """VERIFYs the PIN, then CHANGE REFERENCE DATA to a new value of the same format (expendable cards only).

        Returns the status word of the change. Later keywords use the new value until
        ``Restore Original PIN``.
        """
        kind = PinKind.named(pin)
        name = kind.name.lower()
        guard = self.guard
        current = guard.configured(name)
        new = new_pin_like(current)
        response = guard.change(kind, current, new)
        if response.ok:
            self.ctx.changed_pins[name] = new
        return sw_hex(response.sw)

    @keyword
    def change_pin_without_verify(self, pin: str) -> str:
        """Sends CHANGE REFERENCE DATA without a prior VERIFY (expendable cards only); returns the status word."""
        kind = PinKind.named(pin)
        guard = self.guard
        return sw_hex(guard.change_without_verify(kind, new_pin_like(guard.configured(kind.name.lower()))).sw)

    @keyword
    def change_pin_to_malformed_value(self, pin: str) -> str:
        """VERIFYs the PIN, then tries a new value that breaks the PIN format (expendable cards only); returns
        the status word. Should the card take it, the PIN is changed: destructive."""
        kind = PinKind.named(pin)
        malformed = "12AB" if kind is not PinKind.SIGN else "abc"
        guard = self.guard
        response = guard.change(kind, guard.configured(kind.name.lower()), malformed)
        if response.ok:
            self.ctx.changed_pins[kind.name.lower()] = malformed
        return sw_hex(response.sw)

    @keyword
    def restore_original_pin(self, pin: str) -> None:
        """Changes a PIN changed by ``Change PIN To New Value`` back to the configured value."""
        kind = PinKind.named(pin)
        name = kind.name.lower()
        if name not in self.ctx.changed_pins:
            return
        current = self.ctx.changed_pins.pop(name)
        guard = self.guard
        try:
            response = guard.change(kind, current, guard.configured(name))
        except Exception:
            self.ctx.changed_pins[name] = current
            raise
        if not response.ok:
            self.ctx.changed_pins[name] = current
            raise AssertionError(f"restoring the {name} PIN answered {sw_hex(response.sw)}")

    # -- signing ----------------------------------------------------------------
    @keyword
    def sign_data(self, key: str, data: str | bytes, algorithm: str = "sha256") -> bytes:
        """Signs the DigestInfo of ``data`` with the ``auth`` or ``sign`` key; fails unless 9000."""
        raw = data.encode("utf-8") if isinstance(data, str) else data
        response = self.client.sign(key, checks.digest_info(raw, algorithm))
        return response.data

    @keyword
    def sign_data_status(self, key: str, data: str | bytes = "challenge") -> str:
        """Attempts the signature and returns the status word as hex (e.g. ``6982`` without the PIN)."""
        raw = data.encode("utf-8") if isinstance(data, str) else data
        return sw_hex(self.client.sign(key, checks.digest_info(raw), check=False).sw)

    @keyword
    def sign_raw_data_field(self, key: str, data_hex: str) -> str:
        """Sends the signing command with an arbitrary data field (not a DigestInfo); returns the SW."""
        return sw_hex(self.client.sign(key, parse_hex(data_hex), check=False).sw)

