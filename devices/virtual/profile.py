"""Card and phone profiles: TOML files in ``fixtures/cards/`` that describe a virtual card.

A card and a phone differ only in their profile (applets, token label, which
files need which PIN, ATR/ATQB), never in code.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness import fixtures
from harness.apdu import ApduError, parse_hex

REPO_ROOT = fixtures.data_root()  # aliases kept for older imports; harness.fixtures is the one source
FIXTURES = fixtures.fixtures_dir()
PROFILES_DIR = fixtures.cards_dir()
PKI_DIR = fixtures.pki_dir()
KNOWN_APPLETS = ("jpki", "text", "visual", "juki", "common")


class ProfileError(ValueError):
    """A profile file that cannot be used; the message names the file and the key."""


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
class HolderData:
    """Synthetic holder attributes shared by the text AP and the sign certificate."""

    auth_cn: str
    my_number: str
    name: str
    address: str
    birth_date: str
    sex: str
    expiry_year: str
    security_code: str
    synthetic: bool = False  # a made-up holder: ``--show-holder-data`` may show these values
    record: str = ""  # the section of holders.toml it came from, e.g. "card"


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


def _get(table: dict[str, Any], key: str, kind: type, path: Path, where: str = "") -> Any:
    label = f"{where}{key}"
    if key not in table:
        raise ProfileError(f"{path}: missing key '{label}'")
    value = table[key]
    if (kind is int and isinstance(value, bool)) or not isinstance(value, kind):
        raise ProfileError(f"{path}: '{label}' must be {kind.__name__}, got {type(value).__name__}")
    return value


def _hex(table: dict[str, Any], key: str, path: Path, where: str = "") -> bytes:
    try:
        return parse_hex(_get(table, key, str, path, where))
    except ApduError:
        raise ProfileError(f"{path}: '{where}{key}' is not hex") from None


def load_holder(name: str, holders_file: Path | None = None) -> HolderData:
    path = holders_file or PKI_DIR / "holders.toml"
    data = _read_toml(path)
    if name not in data:
        raise ProfileError(f"{path}: no holder '{name}'; known: {', '.join(sorted(data))}")
    table = data[name]
    fields = [key for key in HolderData.__dataclass_fields__ if key not in ("synthetic", "record")]
    synthetic = table.get("synthetic", False)
    if not isinstance(synthetic, bool):  # unknown means real: the mask stays
        raise ProfileError(f"{path}: '{name}.synthetic' must be true or false, got {synthetic!r}")
    return HolderData(**{key: str(_get(table, key, str, path, f"{name}.")) for key in fields},
                      synthetic=synthetic, record=name)


def load_profile(name_or_path: str) -> CardProfile:
    path = profile_path(name_or_path)
    data = _read_toml(path)
    applets = tuple(_get(data, "applets", list, path))
    unknown = [a for a in applets if a not in KNOWN_APPLETS]
    if unknown or "jpki" not in applets:
        raise ProfileError(f"{path}: applets must include 'jpki' and be among {KNOWN_APPLETS}, got {applets}")
    jpki = _get(data, "jpki", dict, path)
    pins_table = _get(data, "pins", dict, path)
    pins: dict[str, PinSpec] = {}
    for pin_name, spec in pins_table.items():
        if not isinstance(spec, dict):
            raise ProfileError(f"{path}: 'pins.{pin_name}' must be a table")
        pins[pin_name] = PinSpec(
            str(_get(spec, "value", str, path, f"pins.{pin_name}.")),
            _get(spec, "max_tries", int, path, f"pins.{pin_name}."),
        )
    required = {"auth", "sign"} | ({"text"} if "text" in applets else set())
    missing = required - set(pins)
    if missing:
        raise ProfileError(f"{path}: missing PIN(s) {', '.join(sorted(missing))} in [pins]")
    cl = _get(data, "contactless", dict, path)
    holder_name = _get(data, "holder", str, path)
    return CardProfile(
        name=_get(data, "name", str, path),
        kind=_get(data, "kind", str, path),
        holder_name=holder_name,
        holder=load_holder(holder_name),
        applets=applets,
        atr=_hex(data, "atr", path),
        expendable=bool(data.get("expendable", False)),
        token_label=_get(jpki, "token_label", str, path, "jpki."),
        auth_cert_needs_pin=_get(jpki, "auth_cert_needs_pin", bool, path, "jpki."),
        cert_ef_size=_get(jpki, "cert_ef_size", int, path, "jpki."),
        sign_ca_ef_size=_get(jpki, "sign_ca_ef_size", int, path, "jpki."),
        pins=pins,
        contactless=ContactlessSpec(
            atr=_hex(cl, "atr", path, "contactless."),
            pupi=_hex(cl, "pupi", path, "contactless."),
            app_data=_hex(cl, "app_data", path, "contactless."),
            max_frame=int(cl.get("max_frame", 256)),
            fwi=int(cl.get("fwi", 10)),
            bit_rates=tuple(int(r) for r in cl.get("bit_rates", [106])),
        ),
        sign_delay_ms=int(data.get("timing", {}).get("sign_delay_ms", 0)),
        source=path,
    )
