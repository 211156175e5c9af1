"""Deterministic RSA keys for the committed test hierarchy: the same seed gives the same key.

``hil pki generate`` must write the same files twice (fixtures are committed and reviewed by diff),
and OpenSSL's key generation cannot be seeded. Primes come from SHAKE-256 over the seed and a
counter, sieved by small primes and tested by Miller-Rabin with 8 seed-derived bases
(FIPS 186-5 Table B.1). Test material only: a seed is not a secret.

The modular powers (almost all of the time) go to GMP when the ``pki`` extra's gmpy2 is installed: 0.3 ms
against Python's 2.8 ms for a 1024-bit power. The numbers, hence the keys, are the same either way.
"""

from __future__ import annotations

import hashlib
from functools import lru_cache
from math import gcd, prod

from cryptography.hazmat.primitives.asymmetric import rsa

try:
    from gmpy2 import powmod as _gmp_powmod
except ImportError:  # without the pki extra: Python's own, ×8 slower, same numbers
    _gmp_powmod = None


def modular_power(base: int, exponent: int, modulus: int) -> int:
    """``pow(base, exponent, modulus)``, by GMP where gmpy2 is installed."""
    if _gmp_powmod is None:
        return pow(base, exponent, modulus)
    return int(_gmp_powmod(base, exponent, modulus))


def _odd_primes(start: int, stop: int) -> list[int]:
    """The odd primes in [start, stop), by trial division (small bounds, computed once)."""
    return [p for p in range(start | 1, stop, 2) if p > 1 and all(p % d for d in range(3, int(p**0.5) + 1, 2))]


_SMALL_PRIMES = _odd_primes(3, 2000)
MILLER_RABIN_ROUNDS = 8  # FIPS 186-5 B.3: 5 suffice for 1024-bit random primes (error < 2^-100)


@lru_cache(maxsize=1)
def _sieve() -> int:
    """The odd primes from 2000 to 2^14 multiplied: one gcd with a candidate rules out a fifth of those that pass
    the small primes, each of which would cost a Miller-Rabin round (a 1024-bit modular power)."""
    return prod(_odd_primes(2000, 1 << 14))


class _Stream:
    """An endless byte stream from one seed (SHAKE-256 in counter mode)."""

    def __init__(self, seed: bytes) -> None:
        self.seed, self.counter = seed, 0

    def take(self, count: int) -> bytes:
        self.counter += 1
        return hashlib.shake_256(self.seed + self.counter.to_bytes(8, "big")).digest(count)


def _probably_prime(n: int, stream: _Stream) -> bool:
    if any(n % p == 0 for p in _SMALL_PRIMES):
        return n in _SMALL_PRIMES
    if n > 1 << 14 and gcd(n, _sieve()) != 1:
        stream.take(0)  # the first Miller-Rabin round's draw: that round would have found n composite
        return False
    d, s = n - 1, 0
    while d % 2 == 0:
        d, s = d // 2, s + 1
    size = (n.bit_length() + 7) // 8
    for _ in range(MILLER_RABIN_ROUNDS):
        a = 2 + int.from_bytes(stream.take(size), "big") % (n - 3)
        x = modular_power(a, d, n)
        if x in (1, n - 1):
            continue
        for _ in range(s - 1):
            x = pow(x, 2, n)
            if x == n - 1:
                break
        else:
            return False
    return True


def _prime(bits: int, exponent: int, stream: _Stream) -> int:
    while True:
        candidate = int.from_bytes(stream.take(bits // 8), "big") | (0b11 << (bits - 2)) | 1
        if gcd(exponent, candidate - 1) == 1 and _probably_prime(candidate, stream):
            return candidate


@lru_cache(maxsize=256)
def rsa_key(seed: str, bits: int = 2048, exponent: int = 65537) -> rsa.RSAPrivateKey:
    """The RSA key of ``seed``: two ``bits/2``-bit primes with the top two bits set (so n has ``bits`` bits).
    Kept per process (about 0.4 s of CPU each in Python, 0.06 s by GMP; a key object is immutable): a second
    hierarchy from the same seeds, such as a custom holders file's, reuses the roots' and CAs' keys."""
    stream = _Stream(hashlib.sha256(seed.encode("utf-8")).digest())
    p = _prime(bits // 2, exponent, stream)
    q = _prime(bits // 2, exponent, stream)
    while q == p:
        q = _prime(bits // 2, exponent, stream)
    if p < q:
        p, q = q, p
    d = pow(exponent, -1, (p - 1) * (q - 1) // gcd(p - 1, q - 1))
    public = rsa.RSAPublicNumbers(exponent, p * q)
    return rsa.RSAPrivateNumbers(p, q, d, d % (p - 1), d % (q - 1), pow(q, -1, p), public).private_key()


def serial_number(seed: str) -> int:
    """A positive 152-bit certificate serial from ``seed`` (RFC 5280 allows up to 20 octets)."""
    value = int.from_bytes(hashlib.sha256(("serial:" + seed).encode("utf-8")).digest()[:19], "big")
    return value & ((1 << 150) - 1) | 1 << 150  # always 151 bits: 19 DER octets, no sign padding
