"""``virtual:card?via=pcsc``: a virtual card in a vpcd reader, and the real PC/SC reader on it.

:func:`open_via_pcsc` puts the card behind :class:`~.vpcd.VpcdCardServer` on a free vpcd slot and opens
``pcsc:<that vpcd reader>`` through the registry, so the whole PC/SC path (pyscard, pcscd, the driver)
runs under the suites; the bridge adds its details and its close step with the reader's lifecycle hooks.
:func:`serve_forever` is ``hil virtual serve card --pcsc``.
"""

from __future__ import annotations

import contextlib
import signal
import threading
import time
from collections.abc import Mapping
from typing import Protocol, runtime_checkable
from urllib.parse import quote, urlencode

from smartcard import scard

from devices.base import DeviceError, Reader
from devices.pcsc.scard import REMOVAL_GRACE, establish_context, list_readers, release_context
from devices.registry import open_uri
from devices.uri import parse_flag

from ..card import VirtualCard
from ..pcscd import ensure_pcscd, vpcd_first_port
from ..profile import ProfileError
from ..rig import VirtualRig, attach
from ..slot import CardSlot, FaultPlan
from .vpcd import VpcdCardServer
from .vpcd_sessions import PARKED, VPCD_SLOTS, SlotClaim, claim_vpcd_slot, vpcd_reader_name

__all__ = ["PcscHost", "open_via_pcsc", "serve_forever"]

LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")


@runtime_checkable
class PcscHost(Protocol):
    """What the bridge uses of the PC/SC reader the registry opened: its public state and waits."""

    uri: str
    name: str  # the reader's name in pcscd
    pooled: bool  # its close parks the context for the next open (then a healthy card server is parked too)

    def card_state(self) -> int: ...

    def power_off(self) -> None: ...

    def wait_for_card(self, timeout: float) -> None: ...

    def wait_for_removal(self, timeout: float) -> None: ...


def parkable(reader: PcscHost, server: VpcdCardServer) -> bool:
    """Whether the card server can stay up for the next open: connected, card in, pcscd sees it."""
    if not (server.running and server.connected and server.slot.present):
        return False
    try:
        return bool(reader.card_state() & scard.SCARD_STATE_PRESENT)
    except DeviceError:  # closed, or pcscd gone
        return False


def park_or_remove(reader: PcscHost, server: VpcdCardServer) -> None:
    """The bridge's close step, before the reader releases its context. A healthy card server is parked
    (see :class:`~.vpcd_sessions.ParkedServers`): the card stays in vpcd's reader and the next
    ``virtual:…?via=pcsc`` of this process swaps in its fresh card with no presence poll. Otherwise: take
    the card out and wait (bounded) until pcscd shows the slot empty, so the next open finds it free."""
    with contextlib.suppress(DeviceError):
        reader.power_off()
    if reader.pooled and PARKED.enabled and parkable(reader, server):
        PARKED.park(server, reader.name)
        return
    try:
        server.stop()
    finally:
        with contextlib.suppress(DeviceError):
            reader.wait_for_removal(REMOVAL_GRACE)


# Options of virtual:…?via=pcsc: the bridge's, then those devices.virtual.reader applies to the card itself.
BRIDGE_OPTIONS = ("via", "port", "t0", "extended", "reader", "timeout", "max_response", "expendable",
                  "sign_delay_ms")
READER_OPTIONS = ("get_response", "resend_6c", "reset", "share")  # passed on to the pcsc: reader


def open_via_pcsc(card: VirtualCard, uri: str, options: Mapping[str, str]) -> Reader:
    """``virtual:<profile>?via=pcsc[&port=35963][&t0=1][&get_response=0]…``: the card behind pcscd + vpcd.

    Starts pcscd if none runs, connects the card to the first free vpcd slot (or ``port``), waits until
    pcscd reports it present and returns the PC/SC reader on it. ``close()`` also takes the card out.
    ``t0=1`` makes the card answer like a T=0 card (61xx/6Cxx), ``extended=0`` like a short-APDU path.
    """
    unknown = sorted(set(options) - set(BRIDGE_OPTIONS) - set(READER_OPTIONS))
    if unknown:
        raise DeviceError(f"{uri}: unknown option(s) {', '.join(unknown)}")
    try:
        ports = [int(options["port"])] if "port" in options else [vpcd_first_port() + n for n in range(VPCD_SLOTS)]
        timeout = float(options.get("timeout", "5"))
    except ValueError:
        raise DeviceError(f"{uri}: port and timeout must be numbers") from None
    t0 = parse_flag(options.get("t0", "0"), "t0")
    short_only = not parse_flag(options.get("extended", "1"), "extended")
    passed = {key: value for key, value in options.items() if key in READER_OPTIONS}
    ensure_pcscd()
    parked = PARKED.take(ports, options.get("reader"))
    if parked is not None:
        server, name = parked
        server.reconfigure(t0=t0, short_only=short_only)
        server.slot.arm(FaultPlan())
        server.insert(card)  # one step: pcscd sees no change, the power-on's reset reaches the new card
    else:
        port, name, claim = claim_vpcd_slot(ports, options.get("reader"))
        server = VpcdCardServer(CardSlot(card), port=port, t0=t0, short_only=short_only)
        server.claim = claim
        try:
            server.start(timeout)
        except DeviceError:
            claim.release()
            raise
    try:
        reader = open_uri(f"pcsc:{quote(name)}" + (f"?{urlencode(passed)}" if passed else ""))
    except DeviceError:
        server.stop()
        raise
    if not isinstance(reader, PcscHost):  # a lab registered its own pcsc: opener
        reader.close()
        server.stop()
        raise DeviceError(f"{uri}: the pcsc: opener returned no PC/SC reader ({type(reader).__name__})")
    reader.present_as(uri)
    reader.add_details({"via": "vpcd", "vpcd_port": str(server.port), "t0_emulation": "on" if server.t0 else "off"})
    attach(reader, VirtualRig(server.slot, unplug=server.stop, wait_removed=reader.wait_for_removal,
                              card_server=server))
    host: PcscHost = reader
    reader.before_close(lambda: park_or_remove(host, server))
    try:
        reader.wait_for_card(timeout)
    except DeviceError:
        reader.close()
        raise
    return reader


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def serve_forever(profile: str, port: int | None = None, host: str = "127.0.0.1", *,
                  card: VirtualCard | None = None) -> None:
    """``hil virtual serve card --pcsc``: keep the card in a vpcd reader until Ctrl-C (or SIGTERM).

    Both signals are handled here: a process started in the background by a shell ignores SIGINT,
    and an unhandled SIGTERM would skip the atexit hook that stops a pcscd this process started.
    """
    try:
        card = card if card is not None else VirtualCard.from_profile(profile)
    except ProfileError as exc:
        raise DeviceError(str(exc)) from None
    previous: dict[int, object] = {}
    if threading.current_thread() is threading.main_thread():
        previous = {signal.SIGINT: signal.signal(signal.SIGINT, signal.default_int_handler),
                    signal.SIGTERM: signal.signal(signal.SIGTERM, _interrupt)}
    server: VpcdCardServer | None = None
    port = vpcd_first_port() if port is None else port
    try:
        local = host in LOCAL_HOSTS
        if local:
            ensure_pcscd()
        server = VpcdCardServer(CardSlot(card), host=host, port=port)
        if local:  # another process serving this slot would answer for our card: refuse instead
            server.claim = SlotClaim.wait_take(port)
        server.start()
        name = _wait_listed(port) if local else None
        where = f"PC/SC reader '{name}' (device pcsc:{name})" if name else f"the vpcd reader on {host}:{port}"
        print(f"virtual card '{profile}' is in {where}; Ctrl-C to remove it and stop", flush=True)
        while server.running:
            server.join(0.5)
        raise DeviceError(f"the card server on port {port} stopped: {server.last_error}")
    except KeyboardInterrupt:
        pass
    finally:
        if server is not None:
            server.stop()
        for signum, handler in previous.items():
            signal.signal(signum, handler)  # type: ignore[arg-type]


def _wait_listed(port: int, timeout: float = 5.0) -> str | None:
    """The reader name once pcscd reports the card present (bounded); None if it does not show."""
    context = establish_context()
    try:
        name = vpcd_reader_name(port, list_readers(context))
        if name is None:
            return None
        hr, states = scard.SCardGetStatusChange(context, 0, [(name, scard.SCARD_STATE_UNAWARE)])
        deadline = time.monotonic() + timeout
        while hr == scard.SCARD_S_SUCCESS and not states[0][1] & scard.SCARD_STATE_PRESENT:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            current = states[0][1] & ~scard.SCARD_STATE_CHANGED
            hr, states = scard.SCardGetStatusChange(context, int(remaining * 1000), [(name, current)])
        return name
    finally:
        release_context(context)
