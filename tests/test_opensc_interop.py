"""OpenSC against the virtual card through pcscd + vpcd: driver detection, PKCS#15 certificates, a signature.

OpenSC is an independent host implementation of the JPKI AP (its ``jpki`` driver); if it gets along
with the virtual card, so should relying-party software built on it.
"""

from __future__ import annotations

import re
import shutil
import subprocess

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding

pytest_plugins = ["pcsc_support"]  # fixtures: pcscd, served_card

PKCS11_MODULE = "/usr/lib/x86_64-linux-gnu/opensc-pkcs11.so"


def run(*args: str, timeout: float = 60) -> str:
    tool = shutil.which(args[0])
    assert tool, f"{args[0]} is missing: apt-get install opensc (scripts/setup.sh does)"
    proc = subprocess.run([tool, *args[1:]], capture_output=True, text=True, timeout=timeout, check=False)
    assert proc.returncode == 0, f"{' '.join(args[:3])}… failed ({proc.returncode}): {proc.stderr[-1500:]}"
    return proc.stdout


def test_opensc_names_the_card_jpki(served_card):
    _server, name = served_card
    assert run("opensc-tool", "--reader", name, "--name").strip() == "jpki"
    assert run("opensc-tool", "--reader", name, "--atr").strip() == "3b:e0:00:ff:81:31:fe:45:14"


def test_pkcs15_lists_the_auth_and_sign_certificates(served_card):
    server, name = served_card
    listing = run("pkcs15-tool", "--reader", name, "--list-certificates")
    blocks = {match.group(1): match.group(2) for match in re.finditer(r"X\.509 Certificate \[(.+?)\]\n(.*?)(?:\n\n|$)",
                                                                       listing, re.S)}
    assert "User Authentication Certificate" in blocks and "Digital Signature Certificate" in blocks
    assert re.search(r"Path\s*:\s*000a", blocks["User Authentication Certificate"])
    assert re.search(r"ID\s*:\s*01", blocks["User Authentication Certificate"])
    assert re.search(r"Path\s*:\s*0001", blocks["Digital Signature Certificate"])
    pem = run("pkcs15-tool", "--reader", name, "--read-certificate", "01")
    on_card = x509.load_pem_x509_certificate(pem.encode())
    fixture = server.slot.card.profile.pki_file("auth.der").read_bytes()
    assert on_card == x509.load_der_x509_certificate(fixture)


def pkcs11_slot(reader: str, token_label: str) -> str:
    """The PKCS#11 slot id (hex) of ``reader`` whose token has ``token_label``."""
    listing = run("pkcs11-tool", "--module", PKCS11_MODULE, "--list-slots")
    for match in re.finditer(r"Slot \d+ \((0x[0-9a-f]+)\): (.+)\n((?:  .*\n?)*)", listing):
        slot_id, description, body = match.groups()
        if description.strip() == reader and f"token label        : {token_label}" in body:
            return slot_id
    raise AssertionError(f"no PKCS#11 slot for '{reader}' with token '{token_label}':\n{listing}")


def test_pkcs11_signature_with_the_auth_key_verifies(served_card, tmp_path):
    server, name = served_card
    profile = server.slot.card.profile
    slot = pkcs11_slot(name, "JPKI (User Authentication PIN)")
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
