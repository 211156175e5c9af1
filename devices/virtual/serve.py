"""``hil virtual serve``: a virtual card served out of process, behind vpcd, nfcpy's UDP link or serial firmware.

The CLI's one door into the virtual devices (DESIGN.md rule 6): it parses the command line, this module
checks what it means for a virtual card, builds the card and hands it to the chosen bridge's server.
"""

from __future__ import annotations

from pathlib import Path

from .card import VirtualCard
from .card_report import StateFile, TriesError, parse_tries, preset_tries
from .profile import available_profiles, profile_path


class ServeError(ValueError):
    """Serve options that mean nothing together, or a profile that is not there: one line, exit status 2."""


def check_options(profile: str, *, pcsc: bool, port: int | None, nfc_udp: int | None, serial: str | None,
                  rfc2217: int | None) -> None:
    """Options that mean nothing for the chosen way of serving are errors, not silently dropped."""
    if port is not None and not pcsc:
        raise ServeError("--port is the vpcd port of --pcsc; give --pcsc too, or drop --port")
    if rfc2217 is not None and not serial:
        raise ServeError("--rfc2217 serves a --serial reader module; give --serial PROTOCOL too, or drop --rfc2217")
    if not profile_path(profile).exists():
        raise ServeError(f"no card profile '{profile}'; known: {', '.join(available_profiles())} (or a .toml path)")
    if not (pcsc or nfc_udp is not None or serial):
        raise ServeError("say how to serve the card: --pcsc, --nfc-udp PORT or --serial PROTOCOL")


def served_card(profile: str, tries: list[str] | None = None, state_file: str | None = None) -> VirtualCard:
    """The card to serve: its profile, counters pre-set by ``--tries``, reporting to ``--state-file``."""
    card = VirtualCard.from_profile(profile)
    try:
        preset_tries(card, parse_tries(tries, card))
    except TriesError as exc:
        raise ServeError(str(exc)) from None
    if state_file:
        StateFile(Path(state_file)).attach(card)
    return card


def serve(profile: str, *, pcsc: bool = False, port: int | None = None, nfc_udp: int | None = None,
          serial: str | None = None, rfc2217: int | None = None, tries: list[str] | None = None,
          state_file: str | None = None) -> None:
    """Checks the options, builds the card and serves it until Ctrl-C (or SIGTERM)."""
    check_options(profile, pcsc=pcsc, port=port, nfc_udp=nfc_udp, serial=serial, rfc2217=rfc2217)
    card = served_card(profile, tries, state_file)
    if pcsc:
        from .bridges.pcsc import serve_forever as serve_pcsc

        serve_pcsc(profile, port=port, card=card)
    elif nfc_udp is not None:
        from .bridges.nfc import serve_forever as serve_nfc

        serve_nfc(profile, port=nfc_udp, card=card)
    else:
        from .serial_firmware import serve_forever as serve_serial

        serve_serial(profile, str(serial), rfc2217_port=rfc2217, card=card)
