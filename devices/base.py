"""The small interfaces every backend implements, and the typed errors they raise.

A suite only sees a :class:`Reader` (or a :class:`Terminal` holding one); which
backend stands behind it is decided by the device name alone.
"""

from __future__ import annotations

import contextlib
import weakref
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Protocol

from harness.fixtures import HolderData


class DeviceError(Exception):
    """Base of every device failure. ``str()`` is a single line meant for the user."""


class UnknownDevice(DeviceError):
    """A device name or URI scheme nobody registered."""


class BackendUnavailable(DeviceError):
    """The backend's optional dependency or system service is missing."""


class NoReader(DeviceError):
    """The named reader is not connected."""


class NoCard(DeviceError):
    """The reader is there but holds no card (or no target is in the field)."""


class CardRemoved(DeviceError):
    """The card left the reader, possibly in the middle of an APDU."""


class DeviceTimeout(DeviceError):
    """The device did not answer within its timeout."""


class DeviceGone(DeviceError):
    """The reader itself disappeared (unplugged, port closed, service stopped)."""


class DeviceBusy(DeviceError):
    """Another process holds the device exclusively."""


class ProtocolError(DeviceError):
    """The device answered, but not in its protocol (bad frame, checksum, block)."""


@dataclass(frozen=True)
class ReaderCapabilities:
    """What a reader can carry. ``max_response`` is the largest Le it lets through in one APDU."""

    extended_apdu: bool = False
    max_command_data: int = 255
    max_response: int = 256
    contactless: bool = False
    pin_pad: bool = False
    details: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class DeviceInfo:
    """One line of ``hil devices``: a device a backend can open, or one it sees but cannot."""

    uri: str
    description: str
    card_state: str = ""  # "present", "absent", "" when unknown
    atr: bytes = b""
    problem: str = ""  # why it cannot be opened (permissions, driver), empty when usable
    stable_uri: str = ""  # the name for a lab inventory when ``uri`` holds what changes on a replug


@dataclass(frozen=True)
class CardFacts:
    """What a card says of itself beyond its answers: a virtual card's profile, a recording's header.

    Plain data, so the harness core learns them without importing a virtual device or a backend."""

    kind: str = "card"  # "card" or "phone"
    expendable: bool = False
    holder: HolderData | None = None
    holder_record: str = ""  # the holders.toml section: which test certificates the card carries
    pins: Mapping[str, str] = field(default_factory=dict, repr=False)
    virtual: bool = True
    profile: str = ""  # the virtual profile's name (for messages)


class TraceObserver(Protocol):
    """Told of what happens at a reader besides its answers (``harness.tracefile``'s writers are the ones)."""

    def event(self, name: str) -> None: ...


CloseHook = Callable[[], None]


@dataclass
class _Lifecycle:
    """What others attached to one reader: close hooks and capability details (see :class:`Reader`)."""

    before_close: list[CloseHook] = field(default_factory=list)
    after_close: list[CloseHook] = field(default_factory=list)
    details: dict[str, str] = field(default_factory=dict)


class Reader(ABC):
    """A card reader with one slot. Lifecycle: open → wait_for_card → power_on → transmit* → power_off → close.

    Besides the abstract methods, a reader declares its optional features here with the default of a reader
    that lacks them, so the harness reads them as plain attributes and never guesses at a backend's insides.

    A virtual device's bridge opens the real backend through the registry and attaches what it needs with
    :meth:`before_close`, :meth:`after_close` and :meth:`add_details`, never by subclassing the backend.
    A backend frees its own resources in :meth:`release`; :meth:`close` runs the hooks around it.
    """

    uri: str = ""
    recorded_header: dict | None = None  # a ``replay:`` device: the header of the recording it answers from
    # No I/O, answers in the calling thread (the in-process card): the channel needs no deadline thread.
    answers_in_caller: bool = False
    # Every exchange ends within the protocol's own timeouts and bounded retries (a serial module).
    bounded_by_protocol: bool = False
    # The reader itself answers 61xx with GET RESPONSE and 6Cxx with a re-send (PC/SC): see
    # :meth:`set_status_word_handling`.
    handles_status_words: bool = False
    # The trace files this reader writes to (``harness.tracefile.attach`` adds them), told of card changes.
    trace_writers: tuple[TraceObserver, ...] = ()

    @property
    def protocol(self) -> str:
        """The transmission protocol negotiated with the card (``T=0``, ``T=1``); "" where none is negotiated."""
        return ""

    @property
    def auto_exchanges(self) -> Sequence[tuple[bytes, bytes]]:
        """The (command, response) pairs the reader sent on its own during the last transmit (GET RESPONSE,
        a re-send after ``6Cxx``), so the trace shows them where they happened; none for most readers."""
        return ()

    @property
    def terminal_kind(self) -> str:
        """The kind of terminal (``kiosk``, ``stb``) this reader is the module of; "" for a plain reader."""
        return ""

    def set_status_word_handling(self, *, get_response: bool, resend_6c: bool) -> None:
        """Switches the reader's own GET RESPONSE after ``61xx`` and re-send after ``6Cxx`` on or off."""
        raise DeviceError(f"{self.uri}: this reader does not handle 61xx/6Cxx itself (a PC/SC reader does)")

    @property
    @abstractmethod
    def capabilities(self) -> ReaderCapabilities: ...

    @abstractmethod
    def wait_for_card(self, timeout: float) -> None:
        """Return once a card is present; raise :class:`NoCard` after ``timeout`` seconds."""

    @abstractmethod
    def power_on(self) -> bytes:
        """Power or activate the card and return its ATR (contactless: the ATR the reader synthesises)."""

    @abstractmethod
    def transmit(self, apdu: bytes) -> bytes:
        """Send one command APDU and return the response with its status word."""

    @abstractmethod
    def power_off(self) -> None:
        """Deactivate the card; its volatile security state is lost."""

    # -- what a bridge attaches (see the class doc) --------------------------------------------------
    def present_as(self, uri: str) -> None:
        """Go by ``uri`` in messages and traces from now on: a bridge shows its ``virtual:`` name, not the
        host-side device URI it opened. A backend that names itself in more places overrides this."""
        self.uri = uri

    def _lifecycle(self) -> _Lifecycle:
        found = self.__dict__.get("_hooks")
        if found is None:
            found = self.__dict__["_hooks"] = _Lifecycle()
        return found

    def before_close(self, hook: CloseHook) -> None:
        """Run ``hook`` at the first :meth:`close` while the host side is still open (a bridge decides here
        whether its card server stays up for the next open). Last added, first run."""
        self._lifecycle().before_close.append(hook)

    def after_close(self, hook: CloseHook) -> None:
        """Run ``hook`` at the first :meth:`close`, after :meth:`release` (a bridge stops its card side
        here); it runs even if the release failed. Last added, first run."""
        self._lifecycle().after_close.append(hook)

    def add_details(self, details: Mapping[str, str]) -> None:
        """Facts a bridge adds to :attr:`capabilities` ``.details`` (``via=vpcd``, its port), shown by
        ``hil devices`` and in traces after the backend's own."""
        self._lifecycle().details.update(details)

    @property
    def added_details(self) -> Mapping[str, str]:
        """What :meth:`add_details` added; a backend merges it into the details it reports."""
        hooks = self.__dict__.get("_hooks")
        return {} if hooks is None else dict(hooks.details)

    def close(self) -> None:
        """Release the reader. Idempotent: the close hooks run once, around the first :meth:`release`."""
        hooks = self.__dict__.pop("_hooks", None)
        if hooks is None:
            self.release()
            return
        self.__dict__["_hooks"] = _Lifecycle(details=hooks.details)  # the details outlive the close
        with contextlib.ExitStack() as stack:
            for hook in hooks.after_close:
                stack.callback(hook)
            stack.callback(self.release)  # first at exit, also when a before-close hook raised
            for hook in reversed(hooks.before_close):
                hook()

    def release(self) -> None:  # noqa: B027 - optional
        """What the backend frees on close (context, port, device). Idempotent."""

    def describe(self) -> str:
        return self.uri

    def __enter__(self) -> Reader:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


class Terminal(ABC):
    """A kiosk or set-top box: a reader plus the ways a person talks to it (keypad, display)."""

    uri: str = ""

    @property
    @abstractmethod
    def reader(self) -> Reader: ...

    @abstractmethod
    def enter_pin(self, pin: str) -> None:
        """Type a PIN on the terminal's keypad or remote; it never reaches a log."""

    @abstractmethod
    def display_text(self) -> str: ...

    def close(self) -> None:
        self.reader.close()


class CardBench(Protocol):
    """What the harness core may do to the card behind a virtual device (the rest of the rig is for keywords)."""

    def card_facts(self) -> CardFacts | None: ...

    def insert_fresh(self) -> object: ...


_BENCHES: weakref.WeakKeyDictionary[Reader, CardBench] = weakref.WeakKeyDictionary()


def register_bench(reader: Reader, bench: CardBench) -> None:
    """Called by a virtual device's rig (``devices.virtual.rig.attach``) for the reader it stands behind."""
    _BENCHES[reader] = bench


def bench_of(reader: Reader | None) -> CardBench | None:
    """The virtual card behind ``reader`` as the core sees it, or None for a real reader."""
    return None if reader is None else _BENCHES.get(reader)
