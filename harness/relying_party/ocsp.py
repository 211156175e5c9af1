"""An OCSP responder for the test JPKI hierarchy, over HTTP on 127.0.0.1 (RFC 6960 §A.1: POST and GET).

``/ocsp/auth`` and ``/ocsp/sign`` answer for the two test CAs with responses signed by their
delegated responders (``fixtures/pki/auth-ocsp``, ``sign-ocsp``), built with
:func:`make_ocsp_response`. A certificate listed in the hierarchy's CRL is
``revoked``; a test can revoke or reinstate a serial at run time with :meth:`OcspResponder.set_status`.
The certificates' AIA says ``http://127.0.0.1:8089/ocsp/…``; clients are given :attr:`url` instead,
so the responder can take any free port.
"""

from __future__ import annotations

import base64
import threading
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509 import ocsp

from harness.pki import revocation, testpki
from harness.pki.checks import hash_algorithm, utc

MAX_REQUEST = 16_384


@dataclass
class OcspLog:
    """One answered request, for tests: which serial, what status, over which path."""

    path: str
    serial: int | None
    status: str


@dataclass
class _Authority:
    hierarchy: testpki.Hierarchy
    certificates: dict[int, x509.Certificate] = field(default_factory=dict)


class OcspResponder:
    """Lifecycle: ``start()`` → :attr:`url` → ``stop()``; or a context manager. Port 0 picks a free port."""

    def __init__(self, test_pki: testpki.TestPki | None = None, *, port: int = 0) -> None:
        self.pki = test_pki or testpki.load_test_pki()
        self.requested_port = port
        self._authorities = {kind: _Authority(getattr(self.pki, kind)) for kind in ("auth", "sign")}
        for holder in self.pki.holders.values():
            self._authorities["auth"].certificates[holder.auth_cert.serial_number] = holder.auth_cert
            self._authorities["sign"].certificates[holder.sign_cert.serial_number] = holder.sign_cert
        self._overrides: dict[int, revocation.RevocationStatus] = {}
        self._lock = threading.Lock()
        self.log: list[OcspLog] = []
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("OCSP responder not started")
        return self._server.server_address[1]

    @property
    def url(self) -> str:
        """Base URL; the auth CA's responder is ``url + "/auth"``."""
        return f"http://127.0.0.1:{self.port}/ocsp"

    def start(self, timeout: float = 5.0) -> OcspResponder:
        responder = self

        class Handler(_OcspHandler):
            owner = responder

        self._server = ThreadingHTTPServer(("127.0.0.1", self.requested_port), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name=f"ocsp-{self.port}", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout)
        self._server = self._thread = None

    def __enter__(self) -> OcspResponder:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def set_status(self, serial: int, status: revocation.RevocationStatus | None) -> None:
        """Overrides the CRL's verdict for ``serial`` (None: back to the CRL)."""
        with self._lock:
            if status is None:
                self._overrides.pop(serial, None)
            else:
                self._overrides[serial] = status

    def status_of(self, authority: str, cert: x509.Certificate) -> revocation.RevocationStatus:
        with self._lock:
            override = self._overrides.get(cert.serial_number)
        if override is not None:
            return override
        crl = self._authorities[authority].hierarchy.crl
        revoked = crl.get_revoked_certificate_by_serial_number(cert.serial_number)
        return revocation.RevocationStatus.REVOKED if revoked is not None else revocation.RevocationStatus.GOOD

    def answer(self, authority: str, request_der: bytes) -> bytes:
        """The DER response to a DER request (unsuccessful responses for bad or foreign requests)."""
        if authority not in self._authorities:
            return _unsuccessful(ocsp.OCSPResponseStatus.UNAUTHORIZED)
        try:
            request = ocsp.load_der_ocsp_request(request_der)
        except ValueError:
            self.log.append(OcspLog(authority, None, "malformed"))
            return _unsuccessful(ocsp.OCSPResponseStatus.MALFORMED_REQUEST)
        entry = self._authorities[authority]
        cert = entry.certificates.get(request.serial_number)
        if cert is None:
            self.log.append(OcspLog(authority, request.serial_number, "unauthorized"))
            return _unsuccessful(ocsp.OCSPResponseStatus.UNAUTHORIZED)
        try:
            nonce = request.extensions.get_extension_for_class(x509.OCSPNonce).value.nonce
        except x509.ExtensionNotFound:
            nonce = None
        status = self.status_of(authority, cert)
        revoked_at = None
        if status is revocation.RevocationStatus.REVOKED:
            entry_crl = entry.hierarchy.crl.get_revoked_certificate_by_serial_number(cert.serial_number)
            revoked_at = entry_crl.revocation_date_utc if entry_crl is not None else None
        hierarchy = entry.hierarchy
        der = make_ocsp_response(cert, hierarchy.root, hierarchy.ocsp_cert, hierarchy.ocsp_key(), status,
                                     revoked_at, nonce=nonce)
        self.log.append(OcspLog(authority, cert.serial_number, status.value))
        return der


def make_ocsp_response(
    cert: x509.Certificate,
    issuer: x509.Certificate,
    responder_cert: x509.Certificate,
    responder_key: rsa.RSAPrivateKey,
    status: revocation.RevocationStatus,
    revocation_time: datetime | None = None,
    *,
    revocation_reason: x509.ReasonFlags | None = x509.ReasonFlags.key_compromise,
    this_update: datetime | None = None,
    next_update: datetime | None = None,
    nonce: bytes | None = None,
    hash_alg: str = "sha1",
) -> bytes:
    """Signed DER OCSP response: what the responder answers (and what tests build to check the checker).

    ``responder_cert`` is either the issuer itself or a delegated responder, which is then
    embedded so clients can check its authorisation. Pass the request's ``nonce`` to echo it.
    """
    produced = utc(this_update)
    if status is revocation.RevocationStatus.REVOKED:
        revoked_at = utc(revocation_time) if revocation_time else produced
        reason = revocation_reason
    else:
        revoked_at, reason = None, None
    builder = ocsp.OCSPResponseBuilder().add_response(
        cert=cert,
        issuer=issuer,
        algorithm=hash_algorithm(hash_alg),
        cert_status=revocation.OCSP_STATUS[status],
        this_update=produced,
        next_update=utc(next_update) if next_update else produced + timedelta(days=1),
        revocation_time=revoked_at,
        revocation_reason=reason,
    )
    builder = builder.responder_id(ocsp.OCSPResponderEncoding.HASH, responder_cert)
    if responder_cert != issuer:
        builder = builder.certificates([responder_cert])
    if nonce is not None:
        builder = builder.add_extension(x509.OCSPNonce(nonce), critical=False)
    return builder.sign(responder_key, hashes.SHA256()).public_bytes(serialization.Encoding.DER)


def _unsuccessful(status: ocsp.OCSPResponseStatus) -> bytes:
    return ocsp.OCSPResponseBuilder.build_unsuccessful(status).public_bytes(serialization.Encoding.DER)


class _OcspHandler(BaseHTTPRequestHandler):
    owner: OcspResponder
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:
        pass

    def _authority(self) -> tuple[str, str]:
        parts = self.path.split("/", 3)  # "", "ocsp", "auth", rest
        if len(parts) < 3 or parts[1] != "ocsp":
            return "", ""
        return parts[2], parts[3] if len(parts) > 3 else ""

    def _reply(self, body: bytes, status: int = 200) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/ocsp-response")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self) -> None:
        authority, _ = self._authority()
        length = int(self.headers.get("Content-Length") or 0)
        if not authority or length <= 0 or length > MAX_REQUEST:
            self._reply(_unsuccessful(ocsp.OCSPResponseStatus.MALFORMED_REQUEST), 400)
            return
        self._reply(self.owner.answer(authority, self.rfile.read(length)))

    def do_GET(self) -> None:
        authority, encoded = self._authority()
        try:
            request = base64.b64decode(unquote(encoded), validate=True)
        except ValueError:
            request = b""
        if not authority or not request:
            self._reply(_unsuccessful(ocsp.OCSPResponseStatus.MALFORMED_REQUEST), 400)
            return
        self._reply(self.owner.answer(authority, request))
