"""The committed test hierarchy in ``fixtures/pki``: two CAs with responders and CRLs, and the holders.

``load_test_pki().holder("card").auth_cert``; rebuild the files with ``hil pki generate``
(:mod:`harness.pki.generate`).
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa

from harness import fixtures
from harness.pki.checks import PkiError, load_certificate, load_crl, load_private_key, verify_chain

DEFAULT_PKI_DIR = fixtures.pki_dir()


@dataclass(frozen=True)
class Hierarchy:
    """One of the two test CAs (``auth`` or ``sign``) with its OCSP responder and CRL."""

    kind: str
    root: x509.Certificate
    root_path: Path
    key_path: Path
    ocsp_cert: x509.Certificate
    ocsp_cert_path: Path
    ocsp_key_path: Path
    crl: x509.CertificateRevocationList
    crl_path: Path

    def key(self) -> rsa.RSAPrivateKey:
        return load_private_key(self.key_path)

    def ocsp_key(self) -> rsa.RSAPrivateKey:
        return load_private_key(self.ocsp_key_path)


@dataclass(frozen=True)
class HolderPki:
    """One synthetic holder's two certificates and keys, and their holders.toml section."""

    name: str
    data: dict[str, str]
    auth_cert: x509.Certificate
    auth_cert_path: Path
    auth_key_path: Path
    sign_cert: x509.Certificate
    sign_cert_path: Path
    sign_key_path: Path

    def auth_key(self) -> rsa.RSAPrivateKey:
        return load_private_key(self.auth_key_path)

    def sign_key(self) -> rsa.RSAPrivateKey:
        return load_private_key(self.sign_key_path)


@dataclass(frozen=True)
class TestPki:
    """The generated test hierarchy, found by holder name: ``pki.holder("card").auth_cert``."""

    __test__ = False  # not a pytest test class, despite the name

    directory: Path
    auth: Hierarchy
    sign: Hierarchy
    holders: dict[str, HolderPki] = field(default_factory=dict)

    @property
    def auth_root(self) -> x509.Certificate:
        return self.auth.root

    @property
    def sign_root(self) -> x509.Certificate:
        return self.sign.root

    @property
    def roots(self) -> list[x509.Certificate]:
        return [self.auth.root, self.sign.root]

    def holder(self, name: str) -> HolderPki:
        try:
            return self.holders[name]
        except KeyError:
            raise PkiError(f"no holder {name!r} in {self.directory}; known: {', '.join(self.holders)}") from None

    def hierarchy_of(self, cert: x509.Certificate) -> Hierarchy:
        """The hierarchy whose root issued ``cert`` (by key identifier), e.g. to pick CRL and responder."""
        root = verify_chain(cert, self.roots, at=cert.not_valid_before_utc)
        return self.auth if root == self.auth.root else self.sign


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise PkiError(f"missing PKI fixture {path}; rebuild with: hil pki generate") from None


def _load_hierarchy(directory: Path, kind: str) -> Hierarchy:
    paths = {
        "root_path": directory / f"{kind}-ca.der",
        "key_path": directory / f"{kind}-ca.key.pem",
        "ocsp_cert_path": directory / f"{kind}-ocsp.der",
        "ocsp_key_path": directory / f"{kind}-ocsp.key.pem",
        "crl_path": directory / f"{kind}.crl.der",
    }
    return Hierarchy(
        kind=kind,
        root=load_certificate(_read(paths["root_path"])),
        ocsp_cert=load_certificate(_read(paths["ocsp_cert_path"])),
        crl=load_crl(_read(paths["crl_path"])),
        **paths,
    )


def load_test_pki(directory: Path = DEFAULT_PKI_DIR) -> TestPki:
    """Loads the hierarchy ``harness.pki.generate.generate`` wrote; holders are the ``<name>-auth.der`` files."""
    directory = Path(directory)
    holders_toml = directory / "holders.toml"
    sections = tomllib.loads(holders_toml.read_text("utf-8")) if holders_toml.is_file() else {}
    holders = {}
    for auth_path in sorted(directory.glob("*-auth.der")):
        name = auth_path.name.removesuffix("-auth.der")
        sign_path = directory / f"{name}-sign.der"
        holders[name] = HolderPki(
            name=name,
            data={k: str(v) for k, v in sections.get(name, {}).items()},
            auth_cert=load_certificate(auth_path.read_bytes()),
            auth_cert_path=auth_path,
            auth_key_path=directory / f"{name}-auth.key.pem",
            sign_cert=load_certificate(_read(sign_path)),
            sign_cert_path=sign_path,
            sign_key_path=directory / f"{name}-sign.key.pem",
        )
    return TestPki(directory, _load_hierarchy(directory, "auth"), _load_hierarchy(directory, "sign"), holders)
