"""Keywords for the files and PIN objects of JPKI-FACTS §10: short EF identifiers, the text AP's
records, the 券面事項確認AP, 共通AP/住基AP, and signing of raw input.

Checks that touch the holder's personal data read and compare inside one keyword and report only
what differs, so no personal datum becomes a keyword argument or return value that Robot logs.
"""

from __future__ import annotations

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import padding
from robot.api import logger
from robotlibcore import keyword

from harness import apfiles
from harness.fixtures import number_b
from harness.iso import tlv
from harness.iso.apdu import CommandApdu, ResponseApdu, parse_hex, sw_hex
from harness.jpki import APPLETS, JpkiClient, PinKind
from harness.pin_guard import CARD_FACE_COLLATION_NUMBERS, PinTarget
from harness.pki import checks

from .context import LibraryComponent


def _fid(value: str | int) -> int:
    return value if isinstance(value, int) else int(str(value), 16)


def _fail_on(problems: list[str], what: str) -> None:
    if problems:
        raise AssertionError(f"{what}: {'; '.join(problems)}")


class AppletFileKeywords(LibraryComponent):
    @property
    def client(self) -> JpkiClient:
        return JpkiClient(self.ctx.require_channel())

    def _transmit(self, cmd: CommandApdu) -> ResponseApdu:
        return self.ctx.require_channel().transmit(cmd)

    def _select(self, applet: str) -> JpkiClient:
        client = self.client
        client.select_applet(APPLETS[applet])
        return client

    # -- short EF identifiers (§10) ------------------------------------------------------
    @keyword
    def read_binary_by_short_identifier(self, applet: str, fid: str, le: int = 256, offset: int = 0) -> ResponseApdu:
        """SELECTs ``applet``, then ``00 B0 (80|SFI) offset Le`` with no SELECT EF; SFI = FID's low 5 bits."""
        self._select(applet)
        return self._transmit(CommandApdu(0x00, 0xB0, 0x80 | (_fid(fid) & 0x1F), int(offset), le=int(le)))

    @keyword
    def query_pin_by_short_identifier(self, applet: str, fid: str) -> str:
        """SELECTs ``applet``, then the retry query ``00 20 00 (80|SFI)``; returns the status word."""
        self._select(applet)
        return sw_hex(self._transmit(CommandApdu(0x00, 0x20, 0x00, 0x80 | (_fid(fid) & 0x1F))).sw)

    @keyword
    def verify_pin_by_short_identifier(self, pin: str) -> None:
        """VERIFYs the configured ``auth``/``sign``/``text`` PIN with ``00 20 00 (80|SFI)``; fails unless 9000.

        Through the PIN guard like every VERIFY: on a card that is not expendable the tries are queried (by SFI)
        first, and a configured PIN the card refused is not sent again.
        """
        kind = PinKind.named(pin)
        guard = self.ctx.guard()
        name = kind.name.lower()
        result = guard.verify_value(PinTarget.by_short_identifier(kind), guard.configured(name), configured=True)
        if not result.ok:
            raise AssertionError(f"VERIFY {name} by short identifier answered {sw_hex(result.sw)}, expected 9000")

    # -- reading whole files ------------------------------------------------------------------
    def _read_tlv_file(self, applet: str, fid: int) -> bytes:
        client = self._select(applet)
        head = client.read_ef(fid, 8)
        return client.read_ef(fid, tlv.der_total_length(head))

    @keyword
    def read_applet_file_status(self, applet: str, fid: str) -> str:
        """SELECTs ``applet`` and EF ``fid``, reads one byte; returns the READ BINARY status word (or SELECT's)."""
        client = self._select(applet)
        selected = client.select_ef(_fid(fid), check=False)
        if not selected.ok:
            return sw_hex(selected.sw)
        return sw_hex(client.read_binary(0, 1, check=False).sw)

    @keyword
    def applet_files_should_exist(self, applet: str, *fids: str) -> None:
        """Fails unless every EF ``fids`` of ``applet`` answers SELECT with 9000."""
        client = self._select(applet)
        absent = [fid for fid in fids if not client.select_ef(_fid(fid), check=False).ok]
        if absent:
            raise AssertionError(f"{applet} AP lacks EF {', '.join(absent)}")

    @keyword
    def read_applet_file(self, applet: str, fid: str) -> bytes:
        """Reads the TLV object at the start of EF ``fid`` of ``applet`` (its header says the length).

        For files without personal data (certificates, AP information, integrity records, the JPKI AP's EFs).
        """
        data = self._read_tlv_file(applet, _fid(fid))
        logger.info(f"{applet} EF {_fid(fid):04X}: {len(data)} bytes, tag {tlv.parse_one(data).tag:X}")
        return data

    # -- text AP and 券面事項確認AP records (§10) --------------------------------------------
    @keyword
    def ap_information_should_be_well_formed(self, applet: str = "text") -> None:
        """One READ BINARY of 256 bytes of EF 0005 returns 256 bytes: ``FF 40 {DF41, DF42, DF43}``."""
        client = self._select(applet)
        client.select_ef(0x0005)
        response = client.read_binary(0, 256)
        _fail_on(apfiles.ap_info_problems(response.data), f"{applet} AP EF 0005")

    @keyword
    def cv_certificate_should_be_well_formed(self, applet: str = "text") -> None:
        """EF 0004 is a 568-byte ``7F 21 {5F 4E, 5F 37}`` whose signature verifies under its own key."""
        _fail_on(apfiles.cv_certificate_problems(self._read_tlv_file(applet, 0x0004)), f"{applet} AP EF 0004")

    @keyword
    def integrity_record_should_match(self, applet: str = "text") -> None:
        """EF 0003 holds the SHA-256 of EF 0001 and EF 0002 and a signature under EF 0004's key.

        Needs the PIN that opens EF 0001-0003 verified first (text: PIN ``0011``; visual: 照合番号A).
        """
        cert = self._read_tlv_file(applet, 0x0004)
        # text EF 0001 is 17 bytes: its TLV and FF FF (§5); the hash covers the whole EF
        first = self._select(applet).read_ef(0x0001, 17) if applet == "text" else self._read_tlv_file(applet, 0x0001)
        second = self._read_tlv_file(applet, 0x0002)
        record = self._read_tlv_file(applet, 0x0003)
        _fail_on(apfiles.integrity_problems(record, first, second, apfiles.cv_public_key(cert)),
                 f"{applet} AP EF 0003")

    @keyword
    def verify_card_face_collation_number(self, which: str) -> None:
        """VERIFYs 照合番号A (``0013``, the My Number) or B (``0012``) of the 券面事項確認AP; fails unless 9000."""
        holder = self.ctx.facts.holder
        if holder is None:
            raise AssertionError(f"the expected holder of {self.ctx.device_name} is unknown (lab inventory)")
        which = which.strip().upper()
        if which not in CARD_FACE_COLLATION_NUMBERS:
            raise ValueError(f"unknown collation number {which!r}; known: A, B")
        value = holder.my_number if which == "A" else number_b(holder)
        result = self.ctx.guard().verify_value(CARD_FACE_COLLATION_NUMBERS[which], value, configured=True)
        if not result.ok:
            raise AssertionError(f"VERIFY 券面 照合番号{which} answered {sw_hex(result.sw)}")

    @keyword
    def card_face_should_match_the_holder(self) -> None:
        """Reads 券面事項確認AP EF 0002 and checks its layout, images, birth date and sex (values never shown)."""
        holder = self.ctx.facts.holder
        if holder is None:
            raise AssertionError(f"the expected holder of {self.ctx.device_name} is unknown (lab inventory)")
        data = self._read_tlv_file("visual", 0x0002)
        _fail_on(apfiles.card_face_problems(data, holder.birth_date, holder.sex), "card-face EF 0002")
        logger.info(f"card-face EF 0002: {len(data)} bytes, DF21 offsets and the nine fields as specified")

    @keyword
    def query_pin_object(self, applet: str, fid: str) -> str:
        """SELECTs ``applet`` and PIN/key object ``fid``, sends the empty VERIFY; returns the status word."""
        client = self._select(applet)
        selected = client.select_ef(_fid(fid), check=False)
        if not selected.ok:
            return sw_hex(selected.sw)
        return sw_hex(self._transmit(CommandApdu(0x00, 0x20, 0x00, 0x80)).sw)

    @keyword
    def blocked_key_should_refuse_verify(self, applet: str, fid: str) -> None:
        """Key ``fid`` answers the retry query with ``63C0`` and a VERIFY with ``6984`` (text AP key 0012, §10).

        The VERIFY is sent only after the query showed the key blocked, so it can cost no try.
        """
        status = self.query_pin_object(applet, fid)
        if status != "63C0":
            raise AssertionError(f"{applet} key {fid} answered the retry query with {status}, expected 63C0")
        target = PinTarget(f"{applet} key {_fid(fid):04X}", APPLETS[applet], _fid(fid))
        answer = sw_hex(self.ctx.guard().probe_blocked(target).sw)
        if answer != "6984":
            raise AssertionError(f"VERIFY of blocked {applet} key {fid} answered {answer}, expected 6984")

    # -- 共通AP record file (§10) -------------------------------------------------------------
    @keyword
    def card_identification_record_should_be_well_formed(self) -> None:
        """SELECTs 共通AP and sends exactly ``00 B2 01 0C 00``: record 1 is ``01 1C`` + 28 digits."""
        self._select("common")
        response = self._transmit(CommandApdu(0x00, 0xB2, 0x01, 0x0C, le=256))
        if not response.ok:
            raise AssertionError(f"READ RECORD 1 of 共通AP EF 0001 answered {sw_hex(response.sw)}")
        _fail_on(apfiles.card_id_record_problems(response.data), "共通AP EF 0001")

    # -- signing raw input (§10) -----------------------------------------------------------------
    @keyword
    def sign_raw_input(self, key: str, data_hex: str) -> bytes:
        """``80 2A 00 80`` over ``data_hex`` as given (no DigestInfo made here); fails unless 9000."""
        return self.client.sign(key, parse_hex(data_hex)).data

    @keyword
    def raw_signature_should_recover(self, signature: bytes, data_hex: str, certificate: bytes) -> None:
        """Fails unless ``signature`` opens under the certificate's key to PKCS#1 type 01 padding of ``data_hex``."""
        key = checks.load_certificate(certificate).public_key()
        try:
            recovered = key.recover_data_from_signature(signature, padding.PKCS1v15(), None)
        except (InvalidSignature, ValueError, TypeError) as exc:  # never Robot's stop on Ctrl-C
            raise AssertionError(f"signature does not open under the certificate ({type(exc).__name__})") from None
        if recovered != parse_hex(data_hex):
            raise AssertionError(f"signature opens to {len(recovered)} bytes that differ from the input")
