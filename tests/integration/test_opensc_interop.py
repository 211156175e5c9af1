"""OpenSC against the virtual card through pcscd + vpcd: driver detection, PKCS#15, PKCS#11, TLS client auth.

OpenSC is an independent host implementation of the JPKI AP (its ``jpki`` driver); if it gets along
with the virtual card, so should relying-party software built on it. JPKI-FACTS §10 is what the card
must do for it: sign any input with card-side PKCS#1 padding (``pkcs11-tool --test`` signs raw data
and MD5/RIPEMD-160 DigestInfos), be found by its AID when the ATR is unknown (2024 series), and
answer like a real card elsewhere (the sign certificate needs the sign password, #3169).
"""

from __future__ import annotations

import ipaddress
import queue
import re
import shutil
import socket
import subprocess
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID

from devices.virtual.bridges.vpcd import VpcdCardServer
from devices.virtual.bridges.vpcd_sessions import free_vpcd_slot
from devices.virtual.card import VirtualCard
from devices.virtual.pcscd import PcscDaemon
from devices.virtual.profile import PROFILES_DIR, load_profile
from devices.virtual.slot import CardSlot

pytest_plugins = ["pcsc_support"]  # fixtures: pcscd, served_card

PKCS11_MODULE = "/usr/lib/x86_64-linux-gnu/opensc-pkcs11.so"
SELECT_JPKI = bytes.fromhex("00A4040C0AD392F000260100000001")
AUTH_TOKEN = "JPKI (User Authentication PIN)"
SIGN_TOKEN = "JPKI (Digital Signature PIN)"
# pkcs15-jpki.c: certificate ID → EF and fixture
CERTIFICATES = {"01": ("000a", "auth.der"), "02": ("0001", "sign.der"), "03": ("000b", "auth-ca.der"),
                "04": ("0002", "sign-ca.der")}


def run(*args: str, timeout: float = 120, check: bool = True) -> subprocess.CompletedProcess[str]:
    tool = shutil.which(args[0])
    assert tool, f"{args[0]} is missing: run scripts/setup.sh (it installs opensc, gnutls-bin)"
    proc = subprocess.run([tool, *args[1:]], capture_output=True, text=True, timeout=timeout, check=False)
    if check:
        assert proc.returncode == 0, f"{' '.join(args[:3])}… failed ({proc.returncode}): {proc.stderr[-1500:]}"
    return proc


class RecordingCard(VirtualCard):
    """A virtual card that keeps the command APDUs it answered (to see which path a host took)."""

    def __init__(self, profile) -> None:
        super().__init__(profile)
        self.received: list[bytes] = []

    def process(self, apdu: bytes) -> bytes:
        self.received.append(bytes(apdu))
        return super().process(apdu)


def _serve(card: VirtualCard) -> Iterator[tuple[VpcdCardServer, str]]:
    from pcsc_support import wait_reader  # the plugin module; imported once pytest has registered it

    port, name = free_vpcd_slot()
    server = VpcdCardServer(CardSlot(card), port=port).start()
    assert wait_reader(name, True, 5), f"pcscd never reported the card in '{name}'"
    yield server, name
    server.stop()
    wait_reader(name, False, 3)


@pytest.fixture
def served_2024(pcscd: PcscDaemon, no_leaked_threads: None) -> Iterator[tuple[VpcdCardServer, str]]:
    """The 2024-series card (an ATR OpenSC does not list) in a free vpcd slot."""
    yield from _serve(RecordingCard(VirtualCard.from_profile("card-2024").profile))


@pytest.fixture
def served_strict(pcscd: PcscDaemon, no_leaked_threads: None, tmp_path) -> Iterator[tuple[VpcdCardServer, str]]:
    """A card whose profile sets ``strict_digest_info``: it signs only SHA-1/SHA-2 DigestInfos."""
    text = (PROFILES_DIR / "card.toml").read_text("utf-8")
    path = tmp_path / "strict-card.toml"
    path.write_text(text.replace("strict_digest_info = false", "strict_digest_info = true"), "utf-8")
    yield from _serve(VirtualCard(load_profile(str(path))))


def fixture_der(server: VpcdCardServer, filename: str) -> bytes:
    profile = server.slot.card.profile
    holder_file = profile.pki_file(filename)
    return (holder_file if holder_file.exists() else holder_file.parent / filename).read_bytes()


def pkcs11_slot(reader: str, token_label: str) -> str:
    """The PKCS#11 slot id (hex) of ``reader`` whose token has ``token_label``."""
    listing = run("pkcs11-tool", "--module", PKCS11_MODULE, "--list-slots").stdout
    for match in re.finditer(r"Slot \d+ \((0x[0-9a-f]+)\): (.+)\n((?:  .*\n?)*)", listing):
        slot_id, description, body = match.groups()
        if description.strip() == reader and f"token label        : {token_label}" in body:
            return slot_id
    raise AssertionError(f"no PKCS#11 slot for '{reader}' with token '{token_label}':\n{listing}")


# --- detection -------------------------------------------------------------------------------------


def test_opensc_names_the_card_jpki(served_card):
    _server, name = served_card
    assert run("opensc-tool", "--reader", name, "--name").stdout.strip() == "jpki"
    assert run("opensc-tool", "--reader", name, "--atr").stdout.strip() == "3b:e0:00:ff:81:31:fe:45:14"


def test_opensc_finds_the_2024_card_by_selecting_the_jpki_aid(served_2024):
    """JPKI-FACTS §10: the 2024-series ATR is not in OpenSC's list; the jpki driver matches by AID."""
    server, name = served_2024
    atr = run("opensc-tool", "--reader", name, "--atr").stdout.strip()
    assert atr == "3b:da:13:ff:81:31:fb:46:80:12:39:2f:31:c1:73:c6:01:c0:3b"
    server.slot.card.received.clear()
    assert run("opensc-tool", "--reader", name, "--name").stdout.strip() == "jpki"
    assert SELECT_JPKI in server.slot.card.received
    listing = run("pkcs15-tool", "--reader", name, "--list-certificates").stdout
    assert "User Authentication Certificate" in listing and "Digital Signature Certificate" in listing


# --- PKCS#15 -------------------------------------------------------------------------------------


def test_pkcs15_dump_describes_the_card(served_card):
    _server, name = served_card
    dump = run("pkcs15-tool", "--reader", name, "--dump").stdout
    assert "PKCS#15 Card [JPKI]" in dump
    pins = dict(re.findall(r"PIN \[(.+?)\]\n(?:\t.*\n)*?\tTries left\s*: (\d+)", dump))
    assert pins == {"User Authentication PIN": "3", "Digital Signature PIN": "5"}
    keys = re.findall(r"Private RSA Key \[(.+?)\]\n(?:\t.*\n)*?\tModLength\s*: (\d+)", dump)
    assert keys == [("User Authentication Key", "2048"), ("Digital Signature Key", "2048")]
    certs = re.findall(r"X\.509 Certificate \[(.+?)\]\n(?:\t.*\n)*?\tPath\s*: (\w+)\n\tID\s*: (\w+)", dump)
    assert {cid: path for _label, path, cid in certs} == {cid: ef for cid, (ef, _f) in CERTIFICATES.items()}


def test_every_certificate_opensc_reads_matches_the_fixtures(served_card, tmp_path):
    """IDs 01, 03, 04 are free; 02 (EF 0001) needs the sign password, as on a real card (OpenSC #3169)."""
    server, name = served_card
    for cid in ("01", "03", "04"):
        pem = run("pkcs15-tool", "--reader", name, "--read-certificate", cid).stdout
        on_card = x509.load_pem_x509_certificate(pem.encode())
        assert on_card.public_bytes(serialization.Encoding.DER) == fixture_der(server, CERTIFICATES[cid][1]), cid
    refused = run("pkcs15-tool", "--reader", name, "--read-certificate", "02", check=False)
    assert refused.returncode != 0  # 6982 without the sign password
    profile = server.slot.card.profile
    der = tmp_path / "sign.der"
    run("pkcs11-tool", "--module", PKCS11_MODULE, "--slot", pkcs11_slot(name, SIGN_TOKEN), "--login",
        "--pin", profile.pins["sign"].value, "--read-object", "--type", "cert", "--id", "02",
        "--output-file", str(der))
    assert der.read_bytes() == fixture_der(server, "sign.der")


# --- PKCS#11 -------------------------------------------------------------------------------------


@pytest.mark.parametrize(("token", "pin_name"), [(AUTH_TOKEN, "auth"), (SIGN_TOKEN, "sign")])
def test_pkcs11_tool_test_login_passes(served_card, token, pin_name):
    """``pkcs11-tool --test --login`` signs with RSA-PKCS (raw), SHA-1, MD5, RIPEMD-160 and SHA-256 and
    verifies each: it stopped at MD5-RSA-PKCS on a card that took only four DigestInfos (#12)."""
    server, name = served_card
    profile = server.slot.card.profile
    out = run("pkcs11-tool", "--module", PKCS11_MODULE, "--slot", pkcs11_slot(name, token), "--test", "--login",
              "--pin", profile.pins[pin_name].value, timeout=300).stdout
    assert "No errors" in out, out
    for mechanism in ("RSA-PKCS", "SHA1-RSA-PKCS", "MD5-RSA-PKCS", "RIPEMD160-RSA-PKCS", "SHA256-RSA-PKCS"):
        assert re.search(rf"^\s+{mechanism}: OK$", out, re.M), f"{mechanism} not OK:\n{out}"
    assert server.slot.card.pin(pin_name).tries_left == profile.pins[pin_name].max_tries


def test_a_strict_digest_info_card_breaks_pkcs11_tool_test(served_strict):
    """The profile option for a card that takes only four DigestInfos reproduces what #12 saw on main:
    ``pkcs11-tool --test`` fails at MD5-RSA-PKCS (CKR_DATA_INVALID from 6A80)."""
    server, name = served_strict
    profile = server.slot.card.profile
    assert profile.options.strict_digest_info
    proc = run("pkcs11-tool", "--module", PKCS11_MODULE, "--slot", pkcs11_slot(name, AUTH_TOKEN), "--test", "--login",
               "--pin", profile.pins["auth"].value, timeout=300, check=False)
    assert proc.returncode != 0 and "No errors" not in proc.stdout
    assert re.search(r"MD5-RSA-PKCS: $", proc.stdout, re.M), proc.stdout[-1500:]
    assert "C_Sign failed: rv = CKR_DATA_INVALID" in proc.stderr, proc.stderr[-1500:]


def test_pkcs11_signature_with_the_auth_key_verifies(served_card, tmp_path):
    server, name = served_card
    profile = server.slot.card.profile
    slot = pkcs11_slot(name, AUTH_TOKEN)
    message = tmp_path / "challenge.bin"
    message.write_bytes(b"relying-party challenge signed by OpenSC through pcscd")
    signature = tmp_path / "signature.bin"
    run("pkcs11-tool", "--module", PKCS11_MODULE, "--slot", slot, "--sign", "--mechanism", "SHA256-RSA-PKCS",
        "--id", "01", "--pin", profile.pins["auth"].value, "--input-file", str(message),
        "--output-file", str(signature))
    certificate = x509.load_der_x509_certificate(profile.pki_file("auth.der").read_bytes())
    certificate.public_key().verify(signature.read_bytes(), message.read_bytes(), padding.PKCS1v15(),
                                    hashes.SHA256())
    assert server.slot.card.pin("auth").tries_left == profile.pins["auth"].max_tries


# --- TLS client authentication (1.2 and 1.0) ------------------------------------------------------------------


def server_identity(directory: Path) -> tuple[Path, Path]:
    """A throwaway TLS server certificate for 127.0.0.1 (self-signed; the client trusts exactly it)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.now(UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - timedelta(hours=1))
            .not_valid_after(now + timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = directory / "server.pem", directory / "server.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def lines_of(stream, sink: queue.Queue[str]) -> None:
    for line in stream:
        sink.put(line)


@pytest.fixture
def served_recording(pcscd: PcscDaemon, no_leaked_threads: None) -> Iterator[tuple[VpcdCardServer, str]]:
    """The card, keeping the APDUs it answered."""
    yield from _serve(RecordingCard(VirtualCard.from_profile("card").profile))


# TLS 1.2 signs a SHA-256 DigestInfo (51 bytes); TLS 1.0 signs MD5‖SHA-1 raw (36 bytes, no DigestInfo), which
# only a card that pads any input (JPKI-FACTS §10) can do.
TLS_VERSIONS = [("-tls1_2", "TLS1.2", "TLSv1.2", 51), ("-tls1", "TLS1.0", "TLSv1", 36)]


@pytest.mark.parametrize(("server_flag", "gnutls_version", "protocol", "signed_bytes"), TLS_VERSIONS,
                         ids=["tls1.2", "tls1.0"])
def test_tls_client_authentication_with_the_card_auth_key(served_recording, tmp_path, server_flag, gnutls_version,
                                                          protocol, signed_bytes):
    """``openssl s_server`` on 127.0.0.1 requires a client certificate chaining to the test auth root;
    ``gnutls-cli`` presents the card's auth certificate and signs the handshake through OpenSC's PKCS#11."""
    server, _name = served_recording
    profile = server.slot.card.profile
    cert_path, key_path = server_identity(tmp_path)
    ca_pem = tmp_path / "auth-ca.pem"
    ca_pem.write_bytes(x509.load_der_x509_certificate(fixture_der(server, "auth-ca.der"))
                       .public_bytes(serialization.Encoding.PEM))
    client_pem = tmp_path / "card-auth.pem"
    client_pem.write_bytes(x509.load_der_x509_certificate(profile.pki_file("auth.der").read_bytes())
                           .public_bytes(serialization.Encoding.PEM))
    port = free_port()
    openssl = shutil.which("openssl")
    gnutls_cli = shutil.which("gnutls-cli")
    assert openssl and gnutls_cli, "openssl and gnutls-cli are needed: run scripts/setup.sh"
    tls_server = subprocess.Popen(
        [openssl, "s_server", "-accept", f"127.0.0.1:{port}", "-cert", str(cert_path), "-key", str(key_path),
         "-CAfile", str(ca_pem), "-Verify", "2", "-verify_return_error", server_flag, "-cipher", "DEFAULT@SECLEVEL=0",
         "-naccept", "1", "-www"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    output: queue.Queue[str] = queue.Queue()
    reader = threading.Thread(target=lines_of, args=(tls_server.stdout, output), daemon=True)
    reader.start()
    seen: list[str] = []
    try:
        while "ACCEPT" not in "".join(seen):
            seen.append(output.get(timeout=20))
        key_url = (f"pkcs11:token={AUTH_TOKEN.replace(' ', '%20').replace('(', '%28').replace(')', '%29')};"
                   f"id=%01;type=private;pin-value={profile.pins['auth'].value}")
        client = subprocess.run(
            [gnutls_cli, "127.0.0.1", "-p", str(port), "--x509cafile", str(cert_path),
             "--x509certfile", str(client_pem), "--provider", PKCS11_MODULE, "--x509keyfile", key_url,
             "--priority", f"NORMAL:-VERS-ALL:+VERS-{gnutls_version}"],
            input="GET / HTTP/1.0\r\n\r\n", capture_output=True, text=True, timeout=120, check=False)
        tls_server.wait(timeout=30)
    finally:
        if tls_server.poll() is None:
            tls_server.kill()
            tls_server.wait(timeout=10)
        reader.join(timeout=10)
    while not output.empty():
        seen.append(output.get_nowait())
    server_log = "".join(seen)
    assert "Handshake was completed" in client.stdout + client.stderr, client.stderr[-2000:]
    assert re.search(rf"^\s*Protocol\s*: {re.escape(protocol)}$", client.stdout, re.M), client.stdout[-2000:]
    assert "depth=0 C = JP, CN = TESTCARD000000000000001" in server_log, server_log
    assert server_log.count("verify return:1") == 2
    assert "1 server accepts that finished" in server_log
    page_pem = client.stdout[client.stdout.rindex("-----BEGIN CERTIFICATE-----"):]  # s_server shows what it verified
    presented = x509.load_pem_x509_certificate(page_pem[: page_pem.index("-----END CERTIFICATE-----") + 25].encode())
    assert presented.public_bytes(serialization.Encoding.DER) == profile.pki_file("auth.der").read_bytes()
    assert server.slot.card.pin("auth").tries_left == profile.pins["auth"].max_tries
    signed = [apdu for apdu in server.slot.card.received if apdu[:4] == bytes.fromhex("802A0080")]
    assert [apdu[4] for apdu in signed] == [signed_bytes]  # the handshake's one signature, of the expected input
