"""Robot Framework libraries: keyword classes composed into one library per concern.

``JPKILibrary`` is what the suites import; its keyword classes share one
:class:`~harness.keywords.context.LibraryContext` (the open device and its trace).
"""

from __future__ import annotations

from robotlibcore import DynamicCore

from harness.iso.redact import redact_text
from harness.log_redaction import install_log_redaction
from harness.tracefile import CURRENT as CURRENT_TEST

from . import privacy
from .applets import AppletFileKeywords
from .byte_logging import readable_bytes
from .card import CardKeywords
from .ceremony import CeremonyKeywords
from .certificates import CertificateKeywords
from .composition import keyword_methods, specification
from .contactless import ContactlessKeywords
from .context import LibraryContext
from .device import DeviceKeywords
from .evacuation import EvacuationKeywords
from .fault_aliases import DeprecatedFaultKeywords
from .local_services import LocalServiceKeywords
from .mailbox import MailboxKeywords
from .recordings import RecordingKeywords
from .serial import SerialKeywords
from .soak import SoakKeywords
from .terminal import RelyingPartyKeywords, TerminalKeywords
from .textap import TextApKeywords
from .tracing import TraceKeywords
from .transport import TransportKeywords

__version__ = "0.1.0"


class JPKILibrary(DynamicCore):
    """Conformance keywords for My Number cards, phone applets and the readers that carry them.

    Open a device by name (``virtual:card``, ``pcsc:ACS``, ``nfc:usb``…), then select, read,
    verify and sign. PINs never appear in suites: keywords name the PIN (``auth``, ``sign``,
    ``text``) and take its value from the environment, the lab inventory or the virtual profile.
    Every APDU is traced; ``Log APDU Trace`` writes the table into the log, with PINs as ``****`` and the
    holder's data as their structure and lengths; every message and status of the suites passes the same
    mask (``harness.iso.redact``).
    """

    ROBOT_LIBRARY_SCOPE = "SUITE"
    ROBOT_LIBRARY_VERSION = __version__
    ROBOT_LISTENER_API_VERSION = 3
    ROBOT_LISTENER_PRIORITY = 1000  # before any other listener (a results journal, say) sees a message or status

    def __init__(self) -> None:
        self.ctx = LibraryContext()
        self.devices = DeviceKeywords(self.ctx)
        self.terminals = TerminalKeywords(self.ctx)
        self.relying_party = RelyingPartyKeywords(self.ctx)
        self.ceremony = CeremonyKeywords(self.ctx)
        components = [
            self.devices,
            CardKeywords(self.ctx),
            TextApKeywords(self.ctx),
            AppletFileKeywords(self.ctx),
            CertificateKeywords(self.ctx),
            TraceKeywords(self.ctx),
            TransportKeywords(self.ctx),
            ContactlessKeywords(self.ctx),
            SerialKeywords(self.ctx),
            DeprecatedFaultKeywords(self.ctx),  # the fault vocabulary (FaultKeywords) and its old names
            self.terminals,
            self.relying_party,
            self.ceremony,
            MailboxKeywords(self.ctx),
            EvacuationKeywords(self.ctx),
            LocalServiceKeywords(self.ctx),
            RecordingKeywords(self.ctx),
            SoakKeywords(self.ctx),
        ]
        super().__init__(components)
        self.ROBOT_LIBRARY_LISTENER = self
        install_log_redaction()
        privacy.register_known_profiles()

    def add_library_components(self, library_components: list, translation: dict | None = None,
                               translated_kw_names: list | None = None) -> None:
        """robotlibcore's composition, with each class's keyword table kept for the process (see
        :mod:`.composition`); translations, which this library has none of, take robotlibcore's own path."""
        if translation or translated_kw_names:
            super().add_library_components(library_components, translation, translated_kw_names)
            return
        self.keywords_spec["__init__"] = specification(self, "__init__")
        for component in library_components:
            for name, keyword_name in keyword_methods(type(component)):
                bound = getattr(component, name)
                self.keywords[keyword_name] = bound
                self.keywords_spec[keyword_name] = specification(component, name)
                self.attributes[name] = self.attributes[keyword_name] = bound

    # -- listener: every message and status this library's suites write passes the redaction ---------
    def log_message(self, message) -> None:
        """Masks PINs, VERIFY data and holder data in a message before Robot writes it anywhere."""
        message.message = redact_text(readable_bytes(message.message))

    def end_keyword(self, data, result) -> None:
        """Also the arguments as the suite wrote them (output.xml keeps them): hex VERIFY data, a pasted PIN."""
        if result.message:
            result.message = redact_text(result.message)
        if getattr(result, "args", None):
            result.args = tuple(redact_text(arg) if isinstance(arg, str) else arg for arg in result.args)

    def start_test(self, data, result) -> None:
        """The trace files name the test and its requirement ID on every exchange."""
        CURRENT_TEST.begin(getattr(result, "full_name", "") or result.longname, [str(t) for t in data.tags])

    def end_test(self, data, result) -> None:
        CURRENT_TEST.end()
        if result.message:
            result.message = redact_text(result.message)

    def end_suite(self, data, result) -> None:
        if result.message:
            result.message = redact_text(result.message)

    def close(self) -> None:
        """Listener hook at the end of the suite: nothing it opened keeps running (device, terminal, firmware,
        relying party), even when a suite forgot its teardown."""
        self.terminals.close_terminal()
        self.devices.close_device()
        self.relying_party.stop_relying_party()
        self.ceremony.close()
