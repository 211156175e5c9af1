"""Robot Framework libraries: keyword classes composed into one library per concern.

``JPKILibrary`` is what the suites import; its keyword classes share one
:class:`~harness.keywords.context.LibraryContext` (the open device and its trace).
"""

from __future__ import annotations

from robotlibcore import DynamicCore

from .applets import AppletFileKeywords
from .card import CardKeywords
from .certificates import CertificateKeywords
from .contactless import ContactlessKeywords
from .context import LibraryContext
from .device import DeviceKeywords
from .serial import SerialKeywords
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
    Every APDU is traced; ``Log APDU Trace`` writes the table into the log, with PINs as ``****``.
    """

    ROBOT_LIBRARY_SCOPE = "SUITE"
    ROBOT_LIBRARY_VERSION = __version__
    ROBOT_LISTENER_API_VERSION = 3

    def __init__(self) -> None:
        self.ctx = LibraryContext()
        self.devices = DeviceKeywords(self.ctx)
        self.terminals = TerminalKeywords(self.ctx)
        self.relying_party = RelyingPartyKeywords(self.ctx)
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
            self.terminals,
            self.relying_party,
        ]
        super().__init__(components)
        self.ROBOT_LIBRARY_LISTENER = self

    def close(self) -> None:
        """Listener hook at the end of the suite: nothing it opened keeps running (device, terminal, firmware,
        relying party), even when a suite forgot its teardown."""
        self.terminals.close_terminal()
        self.devices.close_device()
        self.relying_party.stop_relying_party()
