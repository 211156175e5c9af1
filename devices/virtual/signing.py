"""RSA signing as the card does it: PKCS#1 v1.5 type-01 padding over whatever the host sends.

JPKI-FACTS §10 CONFIRMED ("Signing input"): ``80 2A 00 80`` pads any 1-245 bytes and signs, so a
DigestInfo is one input among others (OpenSC offers raw CKM_RSA_PKCS, MD5/SHA-224/RIPEMD-160
DigestInfos and TLS 1.0's 36-byte MD5‖SHA-1 through it). A strict profile accepts only the
DigestInfo prefixes of :data:`DIGEST_INFO_PREFIXES`.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, utils
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey

PKCS1_OVERHEAD = 11  # 00 01 FF..FF (8 or more) 00

DIGEST_INFO_PREFIXES: dict[bytes, hashes.HashAlgorithm] = {
    bytes.fromhex("3021300906052B0E03021A05000414"): hashes.SHA1(),
    bytes.fromhex("3031300D060960864801650304020105000420"): hashes.SHA256(),
    bytes.fromhex("3041300D060960864801650304020205000430"): hashes.SHA384(),
    bytes.fromhex("3051300D060960864801650304020305000440"): hashes.SHA512(),
}


def split_digest_info(data: bytes) -> tuple[hashes.HashAlgorithm, bytes] | None:
    """The hash algorithm and hash of a DER DigestInfo of the strict list, or None."""
    for prefix, algorithm in DIGEST_INFO_PREFIXES.items():
        if data.startswith(prefix) and len(data) == len(prefix) + algorithm.digest_size:
            return algorithm, data[len(prefix) :]
    return None


@dataclass(frozen=True)
class _CrtKey:
    """The private numbers in the form a raw CRT exponentiation needs, computed once per key."""

    n: int
    p: int
    q: int
    dp: int
    dq: int
    qinv: int
    size: int


@lru_cache(maxsize=64)
def _crt(key: RSAPrivateKey) -> _CrtKey:
    numbers = key.private_numbers()
    return _CrtKey(numbers.public_numbers.n, numbers.p, numbers.q, numbers.dmp1, numbers.dmq1, numbers.iqmp,
                   (key.key_size + 7) // 8)


def max_input(key: RSAPrivateKey) -> int:
    """Longest input the padding leaves room for: 245 bytes for RSA-2048."""
    return (key.key_size + 7) // 8 - PKCS1_OVERHEAD


def pkcs1_type1_sign(key: RSAPrivateKey, data: bytes) -> bytes:
    """``EM = 00 01 FF… 00 ‖ data``, then the private-key operation (RFC 8017 §9.2 and §5.1.2).

    A known DigestInfo goes through OpenSSL (same bytes, faster); anything else is padded here.
    """
    if not 1 <= len(data) <= max_input(key):
        raise ValueError(f"signing input of {len(data)} bytes; the card takes 1-{max_input(key)}")
    parsed = split_digest_info(data)
    if parsed is not None:
        algorithm, digest = parsed
        return key.sign(digest, padding.PKCS1v15(), utils.Prehashed(algorithm))
    crt = _crt(key)
    encoded = b"\x00\x01" + b"\xff" * (crt.size - 3 - len(data)) + b"\x00" + data
    m = int.from_bytes(encoded, "big")
    s1, s2 = pow(m, crt.dp, crt.p), pow(m, crt.dq, crt.q)
    h = (crt.qinv * (s1 - s2)) % crt.p
    return (s2 + h * crt.q).to_bytes(crt.size, "big")
