"""What the phone app and the issuing authority agree on: the ceremony's steps and the signed application.

The real J-LIS protocol for the smartphone download is not public (JPKI-FACTS §8 only says what the person
sees). This module is our ASSUMPTION of its shape: the card's signing key signs an application that binds
the authority's nonce to the phone's two new public keys, so the authority knows that the holder of this
card asked for certificates on exactly these keys.
"""

from __future__ import annotations

import base64
import binascii
import hashlib

APPLICATION_HEADER = "JPKI-HIL phone certificate application v1"

# The HTTP steps of one ceremony, in order (each one transaction at the authority).
STEP_OPEN = "open"
STEP_APPLY = "apply"
STEP_ISSUE = "issue"
STEP_COMPLETE = "complete"
STEP_CANCEL = "cancel"
STEP_REVOKE_CARD = "revoke_card"
STEP_HOUSEKEEPING = "housekeeping"  # the authority's periodic job: unfinished ceremonies past their time are undone
STEPS = (STEP_OPEN, STEP_APPLY, STEP_ISSUE, STEP_COMPLETE, STEP_CANCEL, STEP_REVOKE_CARD, STEP_HOUSEKEEPING)


def application_bytes(ceremony_id: str, nonce: bytes, phone_id: str, auth_key_der: bytes,
                      sign_key_der: bytes) -> bytes:
    """The exact bytes the card signs (SHA-256, PKCS#1 v1.5) and the authority rebuilds to check.

    The keys enter as SHA-256 of their SubjectPublicKeyInfo DER, so the text stays short and readable.
    """
    lines = [
        APPLICATION_HEADER,
        f"ceremony={ceremony_id}",
        f"nonce={nonce.hex()}",
        f"phone={phone_id}",
        f"auth-key-sha256={hashlib.sha256(auth_key_der).hexdigest()}",
        f"sign-key-sha256={hashlib.sha256(sign_key_der).hexdigest()}",
    ]
    return "\n".join(lines).encode("utf-8")


def step_request_id(ceremony_request: str, step: str) -> str:
    """One request id per step of one attempt: a retry of the step reuses it, so it is applied once."""
    return f"{ceremony_request}:{step}"


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def unb64(value: object, name: str) -> bytes:
    """Decodes a base64 field or raises ``ValueError`` naming it (the server answers 400)."""
    if not isinstance(value, str) or not value:
        raise ValueError(f"{name} must be a non-empty base64 string")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError(f"{name} is not base64") from None
