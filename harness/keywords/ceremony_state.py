"""What the ceremony keywords share: the two devices (each on a channel that marks its trace lines and can pull
the card at a chosen command), the authority, the attempts so far."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from robot.api import SkipExecution

from devices import DeviceError
from devices.base import Reader
from devices.virtual.rig import FaultPlan, VirtualCard, VirtualRig, rig_of
from harness.authority import AuthorityClient, AuthorityServer
from harness.channel import CardChannel
from harness.credentials import DeviceFacts
from harness.iso.apdu import CommandApdu, ResponseApdu
from harness.jpki import JpkiClient, PinKind
from harness.phone_download import CeremonyResult, PhoneDownloadApp, PinSource, verify_card_pin
from harness.pki import checks
from harness.trace import ApduTrace

from .context import LibraryComponent


class DeviceChannel(CardChannel):
    """A channel that marks its trace lines with the device's role and can pull the card at a chosen command."""

    def __init__(self, reader: Reader, trace: ApduTrace, role: str) -> None:
        super().__init__(reader, trace)
        self.role = role
        self.pull_at: tuple[int, int] | None = None  # (INS, occurrence)
        self._seen = 0

    def transmit(self, apdu: bytes | CommandApdu, note: str = "") -> ResponseApdu:
        raw = bytes(apdu)
        if self.pull_at is not None and len(raw) > 1 and raw[1] == self.pull_at[0]:
            self._seen += 1
            if self._seen == self.pull_at[1]:
                self.pull_at = None
                require_rig(self.reader).arm(FaultPlan(remove_at_apdu=1))  # gone while this APDU is in flight
        return super().transmit(raw, f"{self.role}: {note}" if note else self.role)

    def pull_during(self, ins: int, occurrence: int) -> None:
        self.pull_at, self._seen = (ins, occurrence), 0


def require_rig(reader: Reader) -> VirtualRig:
    """The virtual device behind a reader, or a skip: a real card or phone is pulled by hand."""
    rig = rig_of(reader)
    if rig is None:
        raise SkipExecution(f"{reader.uri} is not a virtual device: pull the card or phone by hand")
    return rig


@dataclass
class OpenDevice:
    name: str
    reader: Reader
    channel: DeviceChannel
    facts: DeviceFacts
    card: VirtualCard | None  # kept so a pulled virtual card can go back in with its state
    swapped_out: tuple[VirtualCard, DeviceFacts] | None = None  # the suite's own card while another one is in

    def pin(self, kind: str) -> str:
        return self.facts.pin(kind, self.name)


@dataclass
class CeremonyState:
    server: AuthorityServer | None = None
    db_dir: Path | None = None
    card: OpenDevice | None = None
    phone: OpenDevice | None = None
    app: PhoneDownloadApp | None = None
    results: list[CeremonyResult] = field(default_factory=list)
    wrong_password_next: bool = False


class CeremonyComponent(LibraryComponent):
    """Base of the ceremony keyword classes: one :class:`CeremonyState` per library instance."""

    @property
    def state(self) -> CeremonyState:
        return self.ctx.extension("ceremony", CeremonyState)

    def _server(self) -> AuthorityServer:
        if self.state.server is None:
            raise DeviceError("no authority: call 'Start Authority' first")
        return self.state.server

    def _client(self) -> AuthorityClient:
        return AuthorityClient(self._server().url)

    def _device(self, role: str) -> OpenDevice:
        device = getattr(self.state, role)
        if device is None:
            raise DeviceError(f"no ceremony {role}: call 'Open Ceremony {role.title()}' first")
        return device

    def _card_answers(self, challenge: bytes) -> tuple[bytes, bytes]:
        """The ceremony card, as at any service's reader: auth PIN (through the PIN guard), the auth certificate,
        the auth key's signature over ``challenge``."""
        card = self._device("card")
        client = JpkiClient(card.channel)
        client.select_jpki()
        source = PinSource(lambda: card.pin("auth"), card.facts.expendable, card.facts.pin_reserve, card.name,
                           configured=card.pin)
        if not verify_card_pin(client, PinKind.AUTH, source).ok:
            raise AssertionError("the card refused its auth PIN")
        cert = client.read_certificate("auth")
        return cert, client.sign("auth", checks.digest_info(challenge)).data

    def _card_auth_certificate(self) -> bytes:
        """The ceremony card's auth certificate, read without a PIN (free on the card, JPKI-FACTS §2)."""
        client = JpkiClient(self._device("card").channel)
        client.select_jpki()
        return client.read_certificate("auth")

    def _server_authority(self):
        authority = self._server().authority
        if authority is None:
            raise DeviceError("the authority is not running")
        return authority
