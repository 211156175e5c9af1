"""Card and phone profiles: TOML files in ``fixtures/cards/`` that describe a virtual card.

A card and a phone differ only in their profile (applets, token label, which
files need which PIN, ATR/ATQB, behaviour options), never in code. Every value is checked
for type and range here, so a broken profile is one :class:`ProfileError` line naming the
file and the key, before any card is built. Parsed profiles are kept per file (and its
modification time): every card built from the same file shares them.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from harness import fixtures
from harness.fixtures import HolderData
from harness.iso.apdu import ApduError, parse_hex

from .cardos import CardOptions

REPO_ROOT = fixtures.data_root()  # aliases kept for older imports; harness.fixtures is the one source
FIXTURES = fixtures.fixtures_dir()
PROFILES_DIR = fixtures.cards_dir()
PKI_DIR = fixtures.pki_dir()
KNOWN_APPLETS = ("jpki", "text", "visual", "juki", "common")
KINDS = ("card", "phone")
FRAME_SIZES = (16, 24, 32, 40, 48, 64, 96, 128, 256)  # ISO/IEC 14443-3 FSCI 0-8
BIT_RATES = (106, 212, 424, 848)


class ProfileError(fixtures.FixturesError):
    """A profile file that cannot be used; the one-line message names the file and the key."""


@dataclass(frozen=True)
class PinSpec:
    value: str
    max_tries: int


@dataclass(frozen=True)
class ContactlessSpec:
    atr: bytes
    pupi: bytes
    app_data: bytes
    max_frame: int = 256
    fwi: int = 10
    bit_rates: tuple[int, ...] = (106,)


@dataclass(frozen=True)
class TimingSpec:
    """How long the card takes. ``realistic`` models a real chip over the air (JPKI-FACTS §7, §10):
    signing takes ``realistic_sign_ms`` and every response byte costs 10 bit times at ``air_kbps``."""

    sign_delay_ms: int = 0
    realistic: bool = False
    realistic_sign_ms: int = 450
    air_kbps: int = 106


@dataclass(frozen=True)
class CardProfile:
    name: str
    kind: str
    holder_name: str
    holder: HolderData
    applets: tuple[str, ...]
    atr: bytes
    expendable: bool
    token_label: str
    auth_cert_needs_pin: bool
    cert_ef_size: int
    sign_ca_ef_size: int
    pins: dict[str, PinSpec]
    contactless: ContactlessSpec
    sign_delay_ms: int = 0
    timing: TimingSpec = field(default_factory=TimingSpec)
    options: CardOptions = field(default_factory=CardOptions)
    number_tries: int = 3  # §10 single source: 照合番号A/B retry limits unknown, one source suggests 3
    isd_selectable: bool = True  # §10 SOL: the GlobalPlatform ISD AID selects (OpenSC still picks jpki)
    source: Path | None = field(default=None, compare=False)

    def pki_file(self, suffix: str) -> Path:
        """e.g. ``pki_file("auth.der")`` → ``fixtures/pki/card-auth.der``."""
        return PKI_DIR / f"{self.holder_name}-{suffix}"


def profile_path(name: str) -> Path:
    candidate = Path(name)
    if candidate.suffix == ".toml":
        return candidate
    return PROFILES_DIR / f"{name}.toml"


def available_profiles() -> list[str]:
    return sorted(p.stem for p in PROFILES_DIR.glob("*.toml"))


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except FileNotFoundError:
        raise ProfileError(
            f"no card profile '{path.stem}' ({path}); known: {', '.join(available_profiles())}"
        ) from None
    except tomllib.TOMLDecodeError as exc:
        raise ProfileError(f"{path}: {exc}") from None
    except RecursionError:
        raise ProfileError(f"{path}: nested too deeply to be a profile") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ProfileError(f"{path}: cannot be read ({type(exc).__name__})") from None


def _toml_type(kind: type) -> str:
    return {dict: "a table", list: "an array", str: "a string", bool: "a boolean", int: "an integer",
            float: "a float"}.get(kind, kind.__name__)


def _has_control(value: str) -> bool:
    return any(ord(c) < 0x20 or 0x7F <= ord(c) < 0xA0 for c in value)


class _Table:
    """One TOML table of ``path`` read with type and range checks; ``where`` prefixes key names."""

    def __init__(self, data: Any, path: Path, where: str = "") -> None:
        if not isinstance(data, dict):
            raise ProfileError(f"{path}: '{where.rstrip('.') or 'the file'}' must be a table")
        self.data, self.path, self.where = data, path, where

    def fail(self, key: str, problem: str) -> ProfileError:
        return ProfileError(f"{self.path}: '{self.where}{key}' {problem}")

    def only(self, *keys: str) -> None:
        unknown = sorted(set(self.data) - set(keys))
        if unknown:
            raise self.fail(unknown[0], f"is not a known key (known: {', '.join(keys)})")

    def get(self, key: str, kind: type, default: Any = ...) -> Any:
        if key not in self.data:
            if default is ...:
                raise ProfileError(f"{self.path}: missing key '{self.where}{key}'")
            return default
        value = self.data[key]
        if (kind in (int, float) and isinstance(value, bool)) or not isinstance(value, kind):
            raise self.fail(key, f"must be {_toml_type(kind)}, got {_toml_type(type(value))}")
        return value

    def int_in(self, key: str, low: int, high: int, default: Any = ...) -> int:
        value = self.get(key, int, default)
        if not low <= value <= high:
            raise self.fail(key, f"must be {low}-{high}, got {value}")
        return value

    def text(self, key: str, max_len: int = 256, default: Any = ..., ascii_only: bool = False) -> str:
        value = self.get(key, str, default)
        if not value or len(value) > max_len or (ascii_only and not value.isascii()) or _has_control(value):
            kind = "printable ASCII" if ascii_only else "printable text"
            raise self.fail(key, f"must be 1-{max_len} characters of {kind}")
        return value

    def hex(self, key: str, low: int, high: int) -> bytes:
        try:
            value = parse_hex(self.get(key, str))
        except ApduError:
            raise self.fail(key, "is not hex") from None
        if not low <= len(value) <= high:
            raise self.fail(key, f"must be {low}-{high} bytes, got {len(value)}")
        return value

    def table(self, key: str, required: bool = True) -> _Table:
        if key not in self.data and not required:
            return _Table({}, self.path, f"{self.where}{key}.")
        return _Table(self.get(key, dict), self.path, f"{self.where}{key}.")


def load_holder(name: str, holders_file: Path | None = None) -> HolderData:
    """The holder record ``name`` (:func:`harness.fixtures.load_holder`), its problems as a ProfileError."""
    try:
        return fixtures.load_holder(name, holders_file)
    except fixtures.FixturesError as exc:
        raise ProfileError(str(exc)) from None


def _pins(table: _Table, applets: tuple[str, ...]) -> dict[str, PinSpec]:
    pins: dict[str, PinSpec] = {}
    for pin_name in table.data:
        spec = table.table(pin_name)
        spec.only("value", "max_tries")
        pins[pin_name] = PinSpec(spec.text("value", 16, ascii_only=True), spec.int_in("max_tries", 1, 15))
    required = {"auth", "sign"} | ({"text"} if "text" in applets else set())
    required |= {"juki"} if {"juki", "common"} & set(applets) else set()
    missing = required - set(pins)
    if missing:
        raise ProfileError(f"{table.path}: missing PIN(s) {', '.join(sorted(missing))} in [pins]")
    return pins


def _contactless(table: _Table) -> ContactlessSpec:
    table.only("atr", "pupi", "app_data", "max_frame", "fwi", "bit_rates")
    rates = table.get("bit_rates", list, [106])
    if not rates or any(isinstance(r, bool) or r not in BIT_RATES for r in rates):
        raise table.fail("bit_rates", f"must be a non-empty list of {BIT_RATES}")
    max_frame = table.get("max_frame", int, 256)
    if max_frame not in FRAME_SIZES:
        raise table.fail("max_frame", f"must be one of {FRAME_SIZES}")
    return ContactlessSpec(
        atr=table.hex("atr", 2, 33),
        pupi=table.hex("pupi", 4, 4),
        app_data=table.hex("app_data", 4, 4),
        max_frame=max_frame,
        fwi=table.int_in("fwi", 0, 14, 10),
        bit_rates=tuple(rates),
    )


def _timing(table: _Table) -> TimingSpec:
    table.only(*TimingSpec.__dataclass_fields__)
    air = table.get("air_kbps", int, 106)
    if air not in BIT_RATES:
        raise table.fail("air_kbps", f"must be one of {BIT_RATES}")
    return TimingSpec(
        sign_delay_ms=table.int_in("sign_delay_ms", 0, 60_000, 0),
        realistic=table.get("realistic", bool, False),
        realistic_sign_ms=table.int_in("realistic_sign_ms", 0, 60_000, TimingSpec.realistic_sign_ms),
        air_kbps=air,
    )


def _options(table: _Table) -> tuple[CardOptions, bool]:
    types = CardOptions.field_types()
    table.only(*types, "isd_selectable")
    values: dict[str, Any] = {}
    for key, kind in types.items():
        if key in table.data:
            values[key] = table.get(key, bool) if kind is bool else table.int_in(key, 0, 0xFFFF)
    return CardOptions(**values), table.get("isd_selectable", bool, True)


def _build(path: Path) -> CardProfile:
    top = _Table(_read_toml(path), path)
    applets = tuple(top.get("applets", list))
    unknown = [a for a in applets if a not in KNOWN_APPLETS]
    if unknown or "jpki" not in applets or len(set(applets)) != len(applets):
        raise ProfileError(f"{path}: applets must include 'jpki' and be distinct names among {KNOWN_APPLETS}")
    kind = top.text("kind", 16)
    if kind not in KINDS:
        raise top.fail("kind", f"must be one of {KINDS}, got {kind!r}")
    jpki = top.table("jpki")
    jpki.only("token_label", "auth_cert_needs_pin", "cert_ef_size", "sign_ca_ef_size")
    text = top.table("text", required=False)
    text.only("number_tries")
    holder_name = top.text("holder", 64)
    try:
        holder = load_holder(holder_name)
    except ProfileError as exc:  # the holders file says what it lacks; the profile's line says who asked
        raise ProfileError(f"{path}: 'holder': {exc}") from None
    timing = _timing(top.table("timing", required=False))
    options, isd = _options(top.table("options", required=False))
    return CardProfile(
        name=top.text("name", 128),
        kind=kind,
        holder_name=holder_name,
        holder=holder,
        applets=applets,
        atr=top.hex("atr", 2, 33),
        expendable=top.get("expendable", bool, False),
        token_label=jpki.text("token_label", 32, ascii_only=True),
        auth_cert_needs_pin=jpki.get("auth_cert_needs_pin", bool),
        cert_ef_size=jpki.int_in("cert_ef_size", 256, 32767),
        sign_ca_ef_size=jpki.int_in("sign_ca_ef_size", 256, 32767),
        pins=_pins(top.table("pins"), applets),
        contactless=_contactless(top.table("contactless")),
        sign_delay_ms=timing.sign_delay_ms,
        timing=timing,
        options=options,
        number_tries=text.int_in("number_tries", 1, 15, 3),
        isd_selectable=isd,
        source=path,
    )


@lru_cache(maxsize=64)
def _cached(path: Path, stamp: tuple[int, int]) -> CardProfile:
    return _build(path)


def load_profile(name_or_path: str) -> CardProfile:
    """The profile ``name`` (of ``fixtures/cards``) or at a ``.toml`` path, checked; shared while the file is
    unchanged (a :class:`CardProfile` is immutable: cards copy what they change)."""
    path = profile_path(name_or_path)
    try:
        stat = path.stat()
    except OSError:
        return _build(path)  # reports the missing file in one line
    return _cached(path.resolve(), (stat.st_mtime_ns, stat.st_size))
