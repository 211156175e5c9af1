"""Where the suites and fixtures live: the one module that knows, in a checkout and in an installed wheel.

In a checkout ``robot/`` and ``fixtures/`` sit beside ``harness/``. A wheel carries the same two folders
as package data under ``harness/_data/`` (see ``setup.py``), because a top-level ``robot`` package would
shadow Robot Framework's. A lab points at its own files with two environment variables, read on each call:

- ``HIL_SUITES=/path``: a folder of suites used instead of ``robot/`` (it brings its own resources).
- ``HIL_FIXTURES=/path``: a folder laid out like ``fixtures/``; each of its sub-folders that exists
  (``cards``, ``pki``, ``protocols``, ``relying_party``, ``lab``, ``recordings``) is used instead of the
  built-in one, the others stay built in, so a lab can add one reader protocol and keep the test PKI.

Imports nothing of ours: the device layer may use it (DESIGN.md, dependency rule 1).
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, fields
from datetime import date
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # cryptography is imported by load_fixture_key only: this module stays light
    from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey

SUITES_ENV = "HIL_SUITES"
FIXTURES_ENV = "HIL_FIXTURES"
PACKAGED_DATA = "_data"  # inside the harness package of a wheel; must match setup.py
FIXTURE_KINDS = ("cards", "pki", "protocols", "relying_party", "lab", "recordings")


class FixturesError(ValueError):
    """A suites or fixtures folder or file that cannot be used; one line naming the variable, file or key."""


def _package_dir() -> Path:
    where = resources.files(__package__ or "harness")
    if not isinstance(where, Path):  # a zip import: Robot and pcscd need real files
        raise FixturesError(f"the harness package is not installed as files ({where}); install the wheel unpacked")
    return where


def checkout_root() -> Path | None:
    """The source checkout this harness runs from, or None when it runs from an installed wheel."""
    package = _package_dir()
    if (package / PACKAGED_DATA).is_dir():
        return None
    root = package.parent
    return root if (root / "pyproject.toml").is_file() and (root / "fixtures").is_dir() else None


def data_root() -> Path:
    """The built-in folder holding ``robot/`` and ``fixtures/``: the checkout's root, or the wheel's data."""
    return checkout_root() or _package_dir() / PACKAGED_DATA


def python_paths() -> list[Path]:
    """Folders Robot adds to ``sys.path`` to import the harness: the checkout, nothing once installed."""
    root = checkout_root()
    return [root] if root else []


def _override(variable: str) -> Path | None:
    value = os.environ.get(variable, "").strip()
    return Path(value).expanduser().resolve() if value else None


def suites_dir() -> Path:
    """The suites: ``HIL_SUITES`` when set, else the built-in ``robot/``."""
    return _override(SUITES_ENV) or data_root() / "robot"


def fixtures_dir() -> Path:
    """The fixtures root: ``HIL_FIXTURES`` when set, else the built-in ``fixtures/``."""
    return _override(FIXTURES_ENV) or data_root() / "fixtures"


def fixture_dir(kind: str) -> Path:
    """One kind of fixture: the lab's ``$HIL_FIXTURES/<kind>`` if that folder exists, else the built-in one."""
    if kind not in FIXTURE_KINDS:
        raise FixturesError(f"unknown fixture kind '{kind}'; known: {', '.join(FIXTURE_KINDS)}")
    own = lab_fixture_dir(kind)
    return own if own.is_dir() else data_root() / "fixtures" / kind


def lab_fixture_dir(kind: str) -> Path:
    """Where a lab's own files of one kind go (e.g. ``hil pki generate``): never the built-in copy when
    ``HIL_FIXTURES`` is set, so rebuilding a lab's PKI cannot overwrite the shipped one."""
    return fixtures_dir() / kind


def cards_dir() -> Path:
    return fixture_dir("cards")


def pki_dir() -> Path:
    return fixture_dir("pki")


def protocols_dir() -> Path:
    return fixture_dir("protocols")


def relying_party_dir() -> Path:
    return fixture_dir("relying_party")


def lab_dir() -> Path:
    return fixture_dir("lab")


def recordings_dir() -> Path:
    return fixture_dir("recordings")


def check_environment() -> None:
    """Raises FixturesError when an override names no folder or the built-in data is missing (a broken install)."""
    for variable in (SUITES_ENV, FIXTURES_ENV):
        path = _override(variable)
        if path is not None and not path.is_dir():
            raise FixturesError(f"{variable}={os.environ[variable]}: no such folder")
    root = data_root()
    missing = [name for name in ("robot", "fixtures") if not (root / name).is_dir()]
    if missing:
        raise FixturesError(f"{root}: no {' or '.join(missing)} folder (a harness installed without its data?)")


@dataclass(frozen=True)
class HolderData:
    """Synthetic holder attributes shared by the text AP and the sign certificate (``pki/holders.toml``).

    Here, beside the paths, because the card profiles, the lab inventory and the replayed recordings all
    name a holder record, and the harness core must read it without importing a virtual device."""

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


def wareki_yymmdd(yyyymmdd: str) -> str:
    """Japanese-era YYMMDD (照合番号B starts with it)."""
    born = date(int(yyyymmdd[:4]), int(yyyymmdd[4:6]), int(yyyymmdd[6:8]))
    eras = ((date(2019, 5, 1), 2018), (date(1989, 1, 8), 1988), (date(1926, 12, 25), 1925), (date(1912, 7, 30), 1911))
    for start, offset in eras:
        if born >= start:
            return f"{born.year - offset:02d}{born.month:02d}{born.day:02d}"
    raise ValueError("birth date is before the Taisho era")


def number_b(holder: HolderData) -> str:
    """照合番号B: birth date (和暦 YYMMDD) + expiry year + security code, 14 digits (JPKI-FACTS §10)."""
    return wareki_yymmdd(holder.birth_date) + holder.expiry_year + holder.security_code


HOLDER_DIGITS = {"my_number": 12, "birth_date": 8, "expiry_year": 4, "security_code": 4}


def _has_control(value: str) -> bool:
    return any(ord(c) < 0x20 or 0x7F <= ord(c) < 0xA0 for c in value)


def holders_file() -> Path:
    return pki_dir() / "holders.toml"


def load_holder(name: str, path: Path | None = None) -> HolderData:
    """The holder record ``name``, checked: one :class:`FixturesError` line naming the file and the key."""
    path = path or holders_file()
    try:
        with path.open("rb") as handle:
            data = tomllib.load(handle)
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise FixturesError(f"{path}: cannot be read ({exc})") from None
    table = data.get(name)
    if not isinstance(table, dict):
        raise FixturesError(f"{path}: no holder '{name}'; known: {', '.join(sorted(data))}")
    values: dict[str, str] = {}
    for key in (f.name for f in fields(HolderData) if f.name not in ("synthetic", "record")):
        value = table.get(key)
        if key not in table:
            raise FixturesError(f"{path}: missing key '{name}.{key}'")
        if not isinstance(value, str) or not 1 <= len(value) <= 256 or _has_control(value):
            raise FixturesError(f"{path}: '{name}.{key}' must be 1-256 characters of printable text")
        values[key] = value
    for key, length in HOLDER_DIGITS.items():
        if len(values[key]) != length or not values[key].isdigit():
            raise FixturesError(f"{path}: '{name}.{key}' must be {length} digits")
    if values["sex"] not in ("1", "2", "9"):
        raise FixturesError(f"{path}: '{name}.sex' must be an ISO 5218 code: 1, 2 or 9")
    synthetic = table.get("synthetic", False)  # unknown means real: the mask stays
    if not isinstance(synthetic, bool):
        raise FixturesError(f"{path}: '{name}.synthetic' must be a boolean")
    return HolderData(**values, synthetic=synthetic, record=name)


def expected_certificates(holder: str) -> dict[str, Path]:
    """The certificates a card of test holder ``holder`` carries, from the test PKI (``pki/``)."""
    pki = pki_dir()
    return {"auth": pki / f"{holder}-auth.der", "sign": pki / f"{holder}-sign.der",
            "auth_ca": pki / "auth-ca.der", "sign_ca": pki / "sign-ca.der"}


def load_fixture_key(data: bytes) -> RSAPrivateKey:
    """An unencrypted PEM or DER RSA key of the test PKI, parsed without OpenSSL's RSA check.

    That check tests p and q for primality: ~31 ms a key, paid by every process that signs (each Robot part
    loads two to seven). A key file the harness generated needs no primality test; what a damaged one would
    break is checked here in microseconds instead (n = p·q, both CRT exponents, the CRT coefficient).
    Raises ValueError for anything that is not such a key.
    """
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.hazmat.primitives.serialization import load_der_private_key, load_pem_private_key

    load = load_pem_private_key if data.lstrip().startswith(b"-----BEGIN") else load_der_private_key
    try:
        key = load(data, password=None, unsafe_skip_rsa_key_validation=True)
    except TypeError as exc:  # a password-protected key
        raise ValueError(str(exc)) from None
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ValueError(f"not an RSA key but {type(key).__name__}")
    numbers = key.private_numbers()
    p, q, e, n = numbers.p, numbers.q, numbers.public_numbers.e, numbers.public_numbers.n
    if not (p * q == n and e * numbers.dmp1 % (p - 1) == 1 and e * numbers.dmq1 % (q - 1) == 1
            and numbers.iqmp * q % p == 1):
        raise ValueError("the RSA key's numbers do not fit together (a damaged key file)")
    return key
