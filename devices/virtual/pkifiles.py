"""Immutable material the virtual cards are built from, read once per process and shared.

Keys and DER files are kept per path and modification time, so every card built from the same files
shares them (issue #13); what a card changes (PIN values, counters, security state) lives in its own
objects. Keys are parsed by ``harness.fixtures.load_fixture_key``, without OpenSSL's ~31 ms primality check.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey

from harness.fixtures import load_fixture_key

from .cardos import PinObject
from .profile import CardProfile, ProfileError


def stamp(path: Path) -> tuple[Path, int, int]:
    """The cache key of a file: resolved path, modification time, size."""
    try:
        stat = path.stat()
    except FileNotFoundError:
        raise ProfileError(f"missing PKI fixture {path}; rebuild with: hil pki generate") from None
    return path.resolve(), stat.st_mtime_ns, stat.st_size


@lru_cache(maxsize=128)
def _read(stamp: tuple[Path, int, int]) -> bytes:
    return stamp[0].read_bytes()


@lru_cache(maxsize=64)
def _key(stamp: tuple[Path, int, int]) -> RSAPrivateKey:
    try:
        return load_fixture_key(_read(stamp))
    except ValueError as exc:
        raise ProfileError(f"{stamp[0]} is not an unencrypted RSA private key: {exc}") from None


def read_fixture(path: Path) -> bytes:
    return _read(stamp(path))


def load_key(path: Path) -> RSAPrivateKey:
    """The parsed key at ``path``; the same object for every card while the file is unchanged."""
    return _key(stamp(path))


def cache_info() -> dict[str, int]:
    """Hits and misses of the key cache (for the benchmark and the tests)."""
    info = _key.cache_info()
    return {"hits": info.hits, "misses": info.misses}


def zero_filled(content: bytes, size: int) -> bytes:
    return content + bytes(max(0, size - len(content)))


def digits(length: int) -> Callable[[bytes], bool]:
    def check(value: bytes) -> bool:
        return len(value) == length and value.isdigit()

    return check


def pin_object(profile: CardProfile, name: str, policy: Callable[[bytes], bool],
               object_name: str | None = None) -> PinObject:
    """A fresh PIN object (per card: its counter is mutable) from the profile's ``[pins]`` entry."""
    spec = profile.pins[name]
    return PinObject(object_name or name, spec.value.encode("ascii"), spec.max_tries, policy=policy)
