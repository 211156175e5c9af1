"""Generates the test JPKI hierarchy (``O=JPKI-TEST``) that the virtual cards and suites use.

Two self-signed roots (auth and sign, as on the real card, JPKI-FACTS §6), a delegated OCSP
responder and a CRL for each, per holder of ``holders.toml`` an auth and a sign certificate
shaped and sized like the real ones (§10: auth ≈1571-1573 bytes, sign ≈1742, all six
SubjectAltName attributes), and the card-data key that signs the text and 券面 APs' records.
The output is committed, so validity periods are long enough for the files to stay usable:
roots 20 years, responders and CRLs 10 years, holder certificates to the 5th birthday after
issuance (§6). It is deterministic: keys (:mod:`harness.pki.detrsa`) and serials derive from a seed
and the file name, dates from a fixed issuance day, so ``hil pki generate`` writes the same bytes twice.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from harness.pki.detrsa import rsa_key, serial_number
from harness.pki.profile import (
    AUTH_CN_LENGTH,
    AUTH_POLICY_OID,
    HOLDER_ATTRIBUTE_OIDS,
    RSA_BITS,
    RSA_EXPONENT,
    SIGN_POLICY_OID,
    der_printable_string,
    der_utf8_string,
)
from harness.pki.testpki import DEFAULT_PKI_DIR

DEFAULT_HOLDERS_FILE = DEFAULT_PKI_DIR / "holders.toml"
ORGANIZATION = "JPKI-TEST"  # §6 / §9: test cards use an O=JPKI-TEST hierarchy
AGENCY = "Japan Agency for Local Authority Information Systems"
OCSP_BASE_URL = "http://127.0.0.1:8089/ocsp"  # served by the relying-party emulator
REVOKED_HOLDER = "revoked"  # the holder section whose certificates the CRLs list
SEED = "jpki-hil test hierarchy 1"  # change it (or pass seed=) to get a different hierarchy
ISSUED = datetime(2026, 4, 1, tzinfo=UTC)  # every certificate's notBefore and the CRLs' thisUpdate
CPS_URL = "http://127.0.0.1:8089/cps"
# What the real certificates say in their policy's user notice, and name as issuer in IssuerAltName (§6);
# with them and the six SAN attributes the test certificates have the real sizes (§10).
USER_NOTICE = {
    "auth": "本証明書は、公的個人認証サービス（試験用）の利用者証明用電子証明書です。"
            "This is a test certificate of the JPKI user authentication service; "
            "it identifies no real person, by design.",
    "sign": "本証明書は、公的個人認証サービス（試験用）の署名用電子証明書です。"
            "A JPKI digital signature test certificate.",
}
ISSUER_ALT_ORG = "地方公共団体情報システム機構（試験用）"
CARD_DATA_KEY = "card-data.key.pem"
ROOT_YEARS = 20
RESPONDER_YEARS = 10
CRL_YEARS = 10
# 14:59:59Z is 23:59:59 JST: real certificates end at the close of a Japanese day (§6).
END_OF_JST_DAY = time(14, 59, 59, tzinfo=UTC)
_REQUIRED = ("auth_cn", "name", "address", "birth_date", "sex")
_PREFECTURE = re.compile(r"^(北海道|東京都|京都府|大阪府|.{2,3}県)")


@dataclass(frozen=True)
class HierarchySpec:
    """What differs between the auth and the sign hierarchy."""

    kind: str
    unit: str
    crl_unit: str
    policy: x509.ObjectIdentifier

    def _name(self, *tail: x509.NameAttribute) -> x509.Name:
        """``C=JP, O=JPKI-TEST, OU=<hierarchy>`` and then ``tail``: every name of one hierarchy starts so."""
        return x509.Name([
            x509.NameAttribute(NameOID.COUNTRY_NAME, "JP"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, ORGANIZATION),
            x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, self.unit),
            *tail,
        ])

    @property
    def ca_name(self) -> x509.Name:
        return self._name(x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, AGENCY))

    @property
    def crl_dp_name(self) -> x509.Name:
        """The DirName the certificates point to and the CRL's IssuingDistributionPoint repeats (§6)."""
        return self._name(
            x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, "CRL Distribution Points"),
            x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, self.crl_unit),
        )

    @property
    def responder_name(self) -> x509.Name:
        return self._name(x509.NameAttribute(NameOID.COMMON_NAME, "OCSP Responder"))

    @property
    def ocsp_url(self) -> str:
        return f"{OCSP_BASE_URL}/{self.kind}"


AUTH = HierarchySpec("auth", "JPKI for user authentication", "Auth CRL", AUTH_POLICY_OID)
SIGN = HierarchySpec("sign", "JPKI for digital signature", "Sign CRL", SIGN_POLICY_OID)


@dataclass(frozen=True)
class Issued:
    cert: x509.Certificate
    key: rsa.RSAPrivateKey


# --- dates ---------------------------------------------------------------------------------


def _add_years(day: date, years: int) -> date:
    """Same month/day ``years`` later; 29 February becomes 28 February in common years."""
    try:
        return day.replace(year=day.year + years)
    except ValueError:
        return day.replace(year=day.year + years, day=28)


def expiry_for(birth_date: str, issued: datetime) -> datetime:
    """notAfter of a holder certificate: 14:59:59Z on the 5th birthday after ``issued`` (§6)."""
    born = datetime.strptime(birth_date, "%Y%m%d").date()
    issued_day = issued.astimezone(UTC).date()
    birthday = _add_years(born, issued_day.year - born.year)
    if birthday <= issued_day:
        birthday = _add_years(born, issued_day.year + 1 - born.year)
    return datetime.combine(_add_years(birthday, 4), END_OF_JST_DAY)



def _years_after(start: datetime, years: int) -> datetime:
    return datetime.combine(_add_years(start.date(), years), start.timetz())


# --- certificates --------------------------------------------------------------------------


def new_key(label: str, seed: str | None = None) -> rsa.RSAPrivateKey:
    """RSA-2048, e = 65537, like every JPKI key (§4). With a ``seed`` the same ``label`` gives the same key
    (what :func:`generate` does); without one a fresh random key (for tests that need a stranger)."""
    if seed is None:
        return rsa.generate_private_key(public_exponent=RSA_EXPONENT, key_size=RSA_BITS)
    return rsa_key(f"{seed}/{label}", RSA_BITS, RSA_EXPONENT)


def _builder(subject: x509.Name, issuer: x509.Name, key: rsa.RSAPrivateKey,
             not_before: datetime, not_after: datetime) -> x509.CertificateBuilder:
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(serial_number(f"{subject.rfc4514_string()}|{not_before.isoformat()}|"
                                     f"{key.public_key().public_numbers().n:x}"))
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    )


def _key_usage(*, digital_signature: bool = False, non_repudiation: bool = False,
               cert_sign: bool = False) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=digital_signature,
        content_commitment=non_repudiation,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=cert_sign,
        crl_sign=cert_sign,
        encipher_only=False,
        decipher_only=False,
    )


def _aki(ca: Issued) -> x509.AuthorityKeyIdentifier:
    ski = ca.cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    return x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski)


def make_root(spec: HierarchySpec, not_before: datetime, seed: str | None = None) -> Issued:
    """Self-signed root of one hierarchy (§6: keyCertSign+cRLSign, CA:TRUE)."""
    key = new_key(f"{spec.kind}-ca", seed)
    cert = (
        _builder(spec.ca_name, spec.ca_name, key, not_before, _years_after(not_before, ROOT_YEARS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(_key_usage(cert_sign=True), critical=True)
        .sign(key, hashes.SHA256())
    )
    return Issued(cert, key)


def make_ocsp_responder(spec: HierarchySpec, ca: Issued, not_before: datetime, seed: str | None = None) -> Issued:
    """Delegated responder: EKU OCSPSigning, and ocsp-nocheck so clients need not check it."""
    key = new_key(f"{spec.kind}-ocsp", seed)
    cert = (
        _builder(spec.responder_name, ca.cert.subject, key, not_before,
                 _years_after(not_before, RESPONDER_YEARS))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(digital_signature=True), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.OCSP_SIGNING]), critical=False)
        .add_extension(x509.OCSPNoCheck(), critical=False)
        .add_extension(_aki(ca), critical=False)
        .sign(ca.key, hashes.SHA256())
    )
    return Issued(cert, key)


def _holder_builder(spec: HierarchySpec, ca: Issued, subject: x509.Name, key: rsa.RSAPrivateKey,
                    not_before: datetime, not_after: datetime) -> x509.CertificateBuilder:
    """Extensions both holder certificates share: policy with CPS and user notice, IssuerAltName,
    CRL DP as DirName, AIA OCSP, AKI (§6)."""
    notice = x509.UserNotice(None, USER_NOTICE[spec.kind])
    issuer_alt = x509.Name([
        x509.NameAttribute(NameOID.COUNTRY_NAME, "JP"),
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, ISSUER_ALT_ORG),
    ])
    return (
        _builder(subject, ca.cert.subject, key, not_before, not_after)
        .add_extension(x509.CertificatePolicies([x509.PolicyInformation(spec.policy, [CPS_URL, notice])]),
                       critical=True)
        .add_extension(x509.IssuerAlternativeName([x509.DirectoryName(issuer_alt)]), critical=False)
        .add_extension(
            x509.CRLDistributionPoints([
                x509.DistributionPoint([x509.DirectoryName(spec.crl_dp_name)], None, None, None)
            ]),
            critical=False,
        )
        .add_extension(
            x509.AuthorityInformationAccess([
                x509.AccessDescription(x509.AuthorityInformationAccessOID.OCSP,
                                       x509.UniformResourceIdentifier(spec.ocsp_url))
            ]),
            critical=False,
        )
        .add_extension(_aki(ca), critical=False)
    )


def make_auth_cert(holder: dict[str, str], ca: Issued, not_before: datetime, label: str = "auth",
                   seed: str | None = None) -> Issued:
    """Auth certificate: subject only C=JP and the 23-character CN, no personal data (§6)."""
    key = new_key(label, seed)
    subject = x509.Name([
        x509.NameAttribute(NameOID.COUNTRY_NAME, "JP"),
        x509.NameAttribute(NameOID.COMMON_NAME, holder["auth_cn"]),
    ])
    cert = (
        _holder_builder(AUTH, ca, subject, key, not_before, expiry_for(holder["birth_date"], not_before))
        .add_extension(_key_usage(digital_signature=True), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .sign(ca.key, hashes.SHA256())
    )
    return Issued(cert, key)


def holder_san(holder: dict[str, str]) -> x509.SubjectAlternativeName:
    """All six attributes as otherName entries (§6, §10): name, name substitute, sex, birth date,
    address, address substitute.

    Name, address and their substitutes (the forms in substitute characters; the holder's own
    unless ``name_substitute``/``address_substitute`` are given) are UTF8String; sex and birth
    date are PrintableString, since they are ASCII digits (ISO 5218 code, YYYYMMDD).
    """
    return x509.SubjectAlternativeName([
        x509.OtherName(HOLDER_ATTRIBUTE_OIDS["name"], der_utf8_string(holder["name"])),
        x509.OtherName(HOLDER_ATTRIBUTE_OIDS["name_substitute"],
                       der_utf8_string(holder.get("name_substitute", holder["name"]))),
        x509.OtherName(HOLDER_ATTRIBUTE_OIDS["sex"], der_printable_string(holder["sex"])),
        x509.OtherName(HOLDER_ATTRIBUTE_OIDS["birth_date"], der_printable_string(holder["birth_date"])),
        x509.OtherName(HOLDER_ATTRIBUTE_OIDS["address"], der_utf8_string(holder["address"])),
        x509.OtherName(HOLDER_ATTRIBUTE_OIDS["address_substitute"],
                       der_utf8_string(holder.get("address_substitute", holder["address"]))),
    ])


def make_sign_cert(holder: dict[str, str], ca: Issued, not_before: datetime, label: str = "sign",
                   seed: str | None = None) -> Issued:
    """Sign certificate: holder attributes in SubjectAltName, KU with nonRepudiation (§6)."""
    key = new_key(label, seed)
    attributes = [x509.NameAttribute(NameOID.COUNTRY_NAME, "JP")]
    prefecture = _PREFECTURE.match(holder["address"])
    if prefecture:
        attributes.append(x509.NameAttribute(NameOID.LOCALITY_NAME, prefecture.group(1)))
    attributes.append(x509.NameAttribute(NameOID.COMMON_NAME, holder["name"]))
    cert = (
        _holder_builder(SIGN, ca, x509.Name(attributes), key, not_before,
                        expiry_for(holder["birth_date"], not_before))
        .add_extension(_key_usage(digital_signature=True, non_repudiation=True), critical=True)
        .add_extension(holder_san(holder), critical=False)
        .sign(ca.key, hashes.SHA256())
    )
    return Issued(cert, key)


def make_crl(spec: HierarchySpec, ca: Issued, revoked: list[x509.Certificate],
             this_update: datetime) -> x509.CertificateRevocationList:
    """CRL listing ``revoked`` (keyCompromise), scoped by the same DirName the certificates name."""
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(ca.cert.subject)
        .last_update(this_update)
        .next_update(_years_after(this_update, CRL_YEARS))
        .add_extension(x509.CRLNumber(1), critical=False)
        .add_extension(_aki(ca), critical=False)
        .add_extension(
            x509.IssuingDistributionPoint(
                full_name=[x509.DirectoryName(spec.crl_dp_name)],
                relative_name=None,
                only_contains_user_certs=False,
                only_contains_ca_certs=False,
                only_some_reasons=None,
                indirect_crl=False,
                only_contains_attribute_certs=False,
            ),
            critical=True,
        )
    )
    for cert in revoked:
        builder = builder.add_revoked_certificate(
            x509.RevokedCertificateBuilder()
            .serial_number(cert.serial_number)
            .revocation_date(this_update)
            .add_extension(x509.CRLReason(x509.ReasonFlags.key_compromise), critical=False)
            .build()
        )
    return builder.sign(ca.key, hashes.SHA256())


# --- holders and output --------------------------------------------------------------------


def load_holders(path: Path) -> dict[str, dict[str, str]]:
    """Holder sections of ``holders.toml``, checked so a typo fails here and not in a suite."""
    data = tomllib.loads(path.read_text("utf-8"))
    holders: dict[str, dict[str, str]] = {}
    for name, section in data.items():
        if not isinstance(section, dict):
            raise ValueError(f"{path}: {name} is not a [section]")
        missing = [key for key in _REQUIRED if key not in section]
        if missing:
            raise ValueError(f"{path}: [{name}] lacks {', '.join(missing)}")
        holder = {key: str(value) for key, value in section.items()}
        if len(holder["auth_cn"]) != AUTH_CN_LENGTH:
            raise ValueError(f"{path}: [{name}] auth_cn must have {AUTH_CN_LENGTH} characters")
        try:
            datetime.strptime(holder["birth_date"], "%Y%m%d")
        except ValueError:
            raise ValueError(f"{path}: [{name}] birth_date must be YYYYMMDD") from None
        holders[name] = holder
    if not holders:
        raise ValueError(f"{path}: no holders")
    return holders


def _pem_key(key: rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _der(obj: x509.Certificate | x509.CertificateRevocationList) -> bytes:
    return obj.public_bytes(serialization.Encoding.DER)


README = """\
# Test JPKI hierarchy (O=JPKI-TEST)

Generated by `harness/pki/generate.py`; rebuild with `hil pki generate`. Deterministic: keys and serials derive
from a fixed seed, every date from the fixed issuance day {issued}, so a rebuild writes the same bytes.
Test material only: private keys are unencrypted PKCS#8 PEM and committed on purpose. Nothing is a real person.

- `holders.toml` — synthetic holders; the input. The same values go into the virtual cards' text AP.
- `auth-ca.der`, `auth-ca.key.pem` — self-signed root for user authentication (20 years).
- `sign-ca.der`, `sign-ca.key.pem` — self-signed root for digital signature (20 years).
- `<holder>-auth.der`, `<holder>-auth.key.pem` — auth certificate: subject only C=JP and the 23-character
  CN, KU digitalSignature, EKU clientAuth, policy {auth_policy} (critical), CRL DP as DirName,
  OCSP {ocsp}/auth; ends 14:59:59Z on the 5th birthday after issuance.
- `<holder>-sign.der`, `<holder>-sign.key.pem` — sign certificate: name, name substitute, sex, birth date,
  address, address substitute as otherName in SubjectAltName (UTF8String; sex/birth date PrintableString),
  KU digitalSignature+nonRepudiation, policy {sign_policy}, OCSP {ocsp}/sign.
- `auth-ocsp.der`, `sign-ocsp.der` (+ `.key.pem`) — delegated OCSP responders: EKU OCSPSigning, ocsp-nocheck (10 years).
- Both holder certificates: policy with CPS URI and user notice, IssuerAltName, so they have the real
  sizes (auth ≈1572 bytes, sign ≈1740).
- `card-data.key.pem` — signs the integrity records and CV certificates of the virtual text and 券面 APs.
- `auth.crl.der`, `sign.crl.der` — CRLs (10 years) listing the `{revoked}` holder's certificates, reason keyCompromise.

Holders: {holders}. Load them with `harness.pki.testpki.load_test_pki().holder("card").auth_cert`.
"""


def generate(out_dir: Path, holders_file: Path | None = None, *, seed: str = SEED,
             issued: datetime = ISSUED) -> list[Path]:
    """Writes the hierarchy of ``seed`` issued on ``issued`` into ``out_dir``; returns the files written.

    Holders come from ``holders_file``, else ``out_dir/holders.toml``, else the repository's;
    a holders file from elsewhere is copied in so the directory stays self-describing.
    """
    out_dir = Path(out_dir)
    local = out_dir / "holders.toml"
    source = Path(holders_file) if holders_file else (local if local.is_file() else DEFAULT_HOLDERS_FILE)
    holders = load_holders(source)
    out_dir.mkdir(parents=True, exist_ok=True)
    not_before = issued

    outputs: dict[str, bytes] = {}
    if not (local.is_file() and local.resolve() == source.resolve()):
        outputs["holders.toml"] = source.read_bytes()
    for spec, maker in ((AUTH, make_auth_cert), (SIGN, make_sign_cert)):
        ca = make_root(spec, not_before, seed)
        responder = make_ocsp_responder(spec, ca, not_before, seed)
        outputs[f"{spec.kind}-ca.der"] = _der(ca.cert)
        outputs[f"{spec.kind}-ca.key.pem"] = _pem_key(ca.key)
        outputs[f"{spec.kind}-ocsp.der"] = _der(responder.cert)
        outputs[f"{spec.kind}-ocsp.key.pem"] = _pem_key(responder.key)
        revoked = []
        for name, holder in holders.items():
            made = maker(holder, ca, not_before, f"{name}-{spec.kind}", seed)
            outputs[f"{name}-{spec.kind}.der"] = _der(made.cert)
            outputs[f"{name}-{spec.kind}.key.pem"] = _pem_key(made.key)
            if name == REVOKED_HOLDER:
                revoked.append(made.cert)
        outputs[f"{spec.kind}.crl.der"] = _der(make_crl(spec, ca, revoked, not_before))
    outputs[CARD_DATA_KEY] = _pem_key(new_key("card-data", seed))
    outputs["README.md"] = README.format(
        auth_policy=AUTH_POLICY_OID.dotted_string,
        sign_policy=SIGN_POLICY_OID.dotted_string,
        ocsp=OCSP_BASE_URL,
        revoked=REVOKED_HOLDER,
        holders=", ".join(f"`{name}`" for name in holders),
        issued=issued.date().isoformat(),
    ).encode("utf-8")

    written = []
    for filename, content in outputs.items():
        path = out_dir / filename
        path.write_bytes(content)
        written.append(path)
    return written
