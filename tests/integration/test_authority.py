"""The virtual issuing authority over real HTTP on 127.0.0.1, with its SQLite records and OCSP responder.

The card's part is played by the test PKI's card key (what the card's sign key computes, PKCS#1 v1.5 over
SHA-256); the phone's keys are real RSA-2048 keys made once for the module.
"""

from __future__ import annotations

import base64
import os
import select
import signal
import sqlite3
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.asymmetric.padding import PKCS1v15

from harness.authority import AuthorityClient, AuthorityConfig, AuthorityError, AuthorityServer, application_bytes
from harness.authority.store import Store
from harness.pki import checks, profile, revocation, testpki

pytestmark = pytest.mark.usefixtures("no_thread_leak")  # tests/conftest.py
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def test_pki() -> testpki.TestPki:
    return testpki.load_test_pki()


@pytest.fixture(scope="module")
def phone_keys() -> list[bytes]:
    """Four SubjectPublicKeyInfos: two phones' auth and sign keys."""
    keys = [rsa.generate_private_key(public_exponent=65537, key_size=2048) for _ in range(4)]
    return [k.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
            for k in keys]


@pytest.fixture
def server(tmp_path: Path) -> Iterator[AuthorityServer]:
    with AuthorityServer(AuthorityConfig(tmp_path / "authority.sqlite3")) as running:
        yield running


def der(cert) -> bytes:
    return cert.public_bytes(serialization.Encoding.DER)


class Phone:
    """The app's HTTP side of one ceremony, with the card key standing in for the card."""

    def __init__(self, client: AuthorityClient, holder: testpki.HolderPki, keys: list[bytes], phone_id: str) -> None:
        self.client, self.holder, self.keys, self.phone_id = client, holder, keys, phone_id
        self.base = uuid.uuid4().hex
        self.ceremony = ""
        self.nonce = b""

    def rid(self, step: str) -> str:
        return f"{self.base}:{step}"

    def open(self) -> dict:
        answer = self.client.post("/api/ceremonies", {"request_id": self.rid("open"), "phone_id": self.phone_id})
        self.ceremony, self.nonce = answer["ceremony"], base64.b64decode(answer["nonce"])
        return answer

    def application(self, signer: rsa.RSAPrivateKey | None = None) -> dict:
        data = application_bytes(self.ceremony, self.nonce, self.phone_id, self.keys[0], self.keys[1])
        signature = (signer or self.holder.sign_key()).sign(data, PKCS1v15(), hashes.SHA256())
        b64 = lambda raw: base64.b64encode(raw).decode()  # noqa: E731
        return {"request_id": self.rid("apply"), "card_certificate": b64(der(self.holder.sign_cert)),
                "auth_public_key": b64(self.keys[0]), "sign_public_key": b64(self.keys[1]),
                "signature": b64(signature)}

    def apply(self, signer: rsa.RSAPrivateKey | None = None) -> dict:
        return self.client.post(f"/api/ceremonies/{self.ceremony}/application", self.application(signer))

    def step(self, action: str) -> dict:
        return self.client.post(f"/api/ceremonies/{self.ceremony}/{action}", {"request_id": self.rid(action)})

    def run(self) -> dict:
        self.open()
        self.apply()
        issued = self.step("issue")
        self.step("complete")
        return issued


def ocsp_status(client: AuthorityClient, cert_der: bytes, test_pki: testpki.TestPki, kind: str, **kw) -> str:
    cert = checks.load_certificate(cert_der)
    root = test_pki.auth.root if kind == "auth" else test_pki.sign.root
    answer = client.ocsp(kind, revocation.build_ocsp_request(cert, root, nonce=b"n1"))
    return revocation.check_ocsp_response(answer, cert, root, nonce=b"n1", **kw).value


def cert_of(issued: dict, key: str) -> bytes:
    return base64.b64decode(issued[key])


# -- the ceremony over HTTP ---------------------------------------------------------------------------------
def test_a_ceremony_issues_profiled_certificates_that_chain_and_answer_good(server, test_pki, phone_keys) -> None:
    client = AuthorityClient(server.url)
    issued = Phone(client, test_pki.holder("card"), phone_keys[:2], "phone-1").run()
    auth, sign = checks.load_certificate(cert_of(issued, "auth_certificate")), checks.load_certificate(
        cert_of(issued, "sign_certificate"))
    assert profile.auth_profile_problems(auth) == []
    assert profile.sign_profile_problems(sign) == []
    assert profile.holder_attributes(sign) == profile.holder_attributes(test_pki.holder("card").sign_cert)
    assert checks.verify_chain(auth, test_pki.roots) == test_pki.auth.root
    assert checks.verify_chain(sign, test_pki.roots) == test_pki.sign.root
    spki = serialization.PublicFormat.SubjectPublicKeyInfo
    assert auth.public_key().public_bytes(serialization.Encoding.DER, spki) == phone_keys[0]
    assert sign.not_valid_after_utc == test_pki.holder("card").sign_cert.not_valid_after_utc
    assert ocsp_status(client, der(auth), test_pki, "auth") == "good"
    assert ocsp_status(client, der(sign), test_pki, "sign") == "good"
    card = f"{test_pki.holder('card').sign_cert.serial_number:x}"
    assert [b["status"] for b in client.get(f"/api/bindings?card={card}")["bindings"]] == ["live"]


def test_a_retried_step_gets_the_same_answer_and_is_applied_once(server, test_pki, phone_keys) -> None:
    client = AuthorityClient(server.url)
    phone = Phone(client, test_pki.holder("card"), phone_keys[:2], "phone-1")
    first_open = phone.open()
    again = client.post("/api/ceremonies", {"request_id": phone.rid("open"), "phone_id": "phone-1"})
    assert again == first_open
    phone.apply()
    issued = phone.step("issue")
    assert phone.step("issue") == issued  # the same two certificates, not two more
    assert server.authority.store.counts()["certificates"] == 2
    with pytest.raises(AuthorityError) as reused:
        client.post(f"/api/ceremonies/{phone.ceremony}/complete", {"request_id": phone.rid("issue")})
    assert reused.value.status == 400


def test_a_signature_by_another_key_is_refused_and_nothing_issued(server, test_pki, phone_keys) -> None:
    client = AuthorityClient(server.url)
    phone = Phone(client, test_pki.holder("card"), phone_keys[:2], "phone-1")
    phone.open()
    with pytest.raises(AuthorityError) as refused:
        phone.apply(signer=test_pki.holder("card").auth_key())  # the card's other key
    assert (refused.value.status, refused.value.code) == (403, "bad_signature")
    with pytest.raises(AuthorityError) as later:
        phone.step("issue")
    assert later.value.code == "wrong_state"
    assert server.authority.store.counts()["certificates"] == 0


def test_a_revoked_card_is_refused(server, test_pki, phone_keys) -> None:
    phone = Phone(AuthorityClient(server.url), test_pki.holder("revoked"), phone_keys[:2], "phone-1")
    phone.open()
    with pytest.raises(AuthorityError) as refused:
        phone.apply()
    assert refused.value.code == "revoked"
    assert "CRL revoked" in str(refused.value) and "OCSP revoked" in str(refused.value)


def test_an_expired_card_is_refused(tmp_path, test_pki, phone_keys) -> None:
    card = test_pki.holder("card").sign_cert
    config = AuthorityConfig(tmp_path / "a.sqlite3", clock=lambda: card.not_valid_after_utc + timedelta(days=1))
    with AuthorityServer(config) as later:
        phone = Phone(AuthorityClient(later.url), test_pki.holder("card"), phone_keys[:2], "phone-1")
        phone.open()
        with pytest.raises(AuthorityError) as refused:
            phone.apply()
    assert refused.value.code == "expired"


def test_a_key_that_is_not_rsa_2048_is_refused(server, test_pki, phone_keys) -> None:
    small = rsa.generate_private_key(public_exponent=65537, key_size=1024).public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    phone = Phone(AuthorityClient(server.url), test_pki.holder("card"), [small, phone_keys[1]], "phone-1")
    phone.open()
    with pytest.raises(AuthorityError) as refused:
        phone.apply()
    assert (refused.value.status, refused.value.code) == (422, "bad_application")


def test_malformed_requests_get_one_line_errors(server) -> None:
    client = AuthorityClient(server.url)
    with pytest.raises(AuthorityError) as no_id:
        client.post("/api/ceremonies", {"phone_id": "p"})
    assert (no_id.value.status, no_id.value.code) == (400, "bad_request")
    with pytest.raises(AuthorityError) as bad_b64:
        client.post("/api/ceremonies/x/application", {"request_id": "r", "card_certificate": "%%"})
    assert bad_b64.value.status == 400 and "\n" not in str(bad_b64.value)
    with pytest.raises(AuthorityError) as missing:
        client.post("/api/ceremonies/nope/issue", {"request_id": "r2"})
    assert missing.value.code == "no_ceremony"


# -- the binding rules ---------------------------------------------------------------------------------------------
def test_a_second_phone_revokes_the_first(server, test_pki, phone_keys) -> None:
    client = AuthorityClient(server.url)
    first = Phone(client, test_pki.holder("card"), phone_keys[:2], "phone-A").run()
    second = Phone(client, test_pki.holder("card"), phone_keys[2:], "phone-B").run()
    assert ocsp_status(client, cert_of(first, "auth_certificate"), test_pki, "auth") == "revoked"
    assert ocsp_status(client, cert_of(first, "sign_certificate"), test_pki, "sign") == "revoked"
    assert ocsp_status(client, cert_of(second, "auth_certificate"), test_pki, "auth") == "good"
    assert len(second["superseded"]) == 2
    card = f"{test_pki.holder('card').sign_cert.serial_number:x}"
    assert server.authority.live_phones(card) == [b["ceremony_id"] for b in
                                                   client.get("/api/bindings")["bindings"] if b["status"] == "live"]


def test_revoking_the_card_revokes_its_phone(server, test_pki, phone_keys) -> None:
    client = AuthorityClient(server.url)
    issued = Phone(client, test_pki.holder("card"), phone_keys[:2], "phone-A").run()
    card = test_pki.holder("card").sign_cert
    answer = client.post("/api/cards/revoke", {"request_id": "rv1", "serial": f"{card.serial_number:x}"})
    assert len(answer["revoked_certificates"]) == 2
    assert ocsp_status(client, der(card), test_pki, "sign") == "revoked"
    assert ocsp_status(client, cert_of(issued, "auth_certificate"), test_pki, "auth") == "revoked"
    with pytest.raises(AuthorityError) as refused:
        Phone(client, test_pki.holder("card"), phone_keys[2:], "phone-B").run()
    assert refused.value.code == "revoked"


def test_the_database_itself_refuses_a_second_live_phone(tmp_path) -> None:
    store = Store(tmp_path / "a.sqlite3")
    with store.transaction() as tx:
        for ceremony in ("c1", "c2"):
            tx.add_ceremony(ceremony, "p", b"n", 0.0)
        tx.add_binding("c1", "card-1", "p", 0.0)
    with pytest.raises(sqlite3.IntegrityError), store.transaction() as tx:
        tx.add_binding("c2", "card-1", "p", 1.0)
    assert [b.ceremony_id for b in store.bindings("card-1")] == ["c1"]
    store.close()


def test_an_abandoned_ceremony_is_undone_when_its_time_runs_out(server, test_pki, phone_keys) -> None:
    client = AuthorityClient(server.url)
    phone = Phone(client, test_pki.holder("card"), phone_keys[:2], "phone-A")
    phone.open()
    phone.apply()
    issued = phone.step("issue")  # the phone never stores them
    server.authority.advance_clock(server.config.ceremony_ttl + 1)
    client.post("/api/housekeeping", {"request_id": "hk1"})
    assert client.get(f"/api/ceremonies/{phone.ceremony}")["status"] == "cancelled"
    assert ocsp_status(client, cert_of(issued, "sign_certificate"), test_pki, "sign",
                       at=server.authority.now()) == "revoked"
    with pytest.raises(AuthorityError):
        phone.step("complete")


# -- persistence and crashes ---------------------------------------------------------------------------------------
def test_a_restart_loses_no_registration(server, test_pki, phone_keys) -> None:
    client = AuthorityClient(server.url)
    issued = Phone(client, test_pki.holder("card"), phone_keys[:2], "phone-A").run()
    before = server.authority.store.counts()
    port = server.port
    server.restart()
    assert server.port == port
    assert server.authority.store.counts() == before
    assert ocsp_status(client, cert_of(issued, "auth_certificate"), test_pki, "auth") == "good"
    second = Phone(client, test_pki.holder("card"), phone_keys[2:], "phone-B").run()
    assert len(second["superseded"]) == 2  # the binding made before the restart was found and revoked


@pytest.mark.parametrize("step", ["open", "apply", "issue", "complete"])
@pytest.mark.parametrize("point", ["before_commit", "after_commit"])
def test_a_crash_inside_a_step_leaves_all_or_nothing_and_a_retry_completes(server, test_pki, phone_keys, step,
                                                                           point) -> None:
    client = AuthorityClient(server.url, timeout=5)
    phone = Phone(client, test_pki.holder("card"), phone_keys[:2], "phone-A")
    actions = {"open": phone.open, "apply": phone.apply, "issue": lambda: phone.step("issue"),
               "complete": lambda: phone.step("complete")}
    order = list(actions)
    for earlier in order[: order.index(step)]:
        actions[earlier]()
    before = server.authority.store.counts()
    server.crash_during(step, point)
    with pytest.raises(AuthorityError) as lost:
        actions[step]()
    assert lost.value.unreachable
    assert server.crashed.wait(5)
    server.restart()
    after = server.authority.store.counts()
    if point == "before_commit":
        assert after == before
    else:
        assert after["requests"] == before["requests"] + 1
    for again in order[order.index(step):]:
        actions[again]()
    counts = server.authority.store.counts()
    assert (counts["ceremonies"], counts["certificates"], counts["bindings"]) == (1, 2, 1)


def _start_process(db: Path, *extra: str) -> tuple[subprocess.Popen, str]:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.Popen([sys.executable, "-m", "harness.authority", "--db", str(db), *extra],
                            stdout=subprocess.PIPE, text=True, env=env, cwd=REPO)
    line = _line(proc, 30)
    assert line.startswith("READY "), line
    return proc, line.split()[1]


def _line(proc: subprocess.Popen, timeout: float) -> str:
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], timeout)
    assert ready, "the authority process printed nothing in time"
    return proc.stdout.readline().strip()


@pytest.mark.parametrize("step", ["open", "apply", "issue", "complete"])
def test_a_killed_process_in_the_middle_of_a_step_leaves_nothing_of_it(tmp_path, test_pki, phone_keys, step) -> None:
    """A real crash: the authority process is SIGKILLed inside the step's transaction (writes done, not
    committed); a new process on the same file sees nothing of the step, and the same request ids complete."""
    db = tmp_path / "authority.sqlite3"
    proc, url = _start_process(db, "--pause-at", step)
    phone = Phone(AuthorityClient(url, timeout=30), test_pki.holder("card"), phone_keys[:2], "phone-A")
    actions = {"open": phone.open, "apply": phone.apply, "issue": lambda: phone.step("issue"),
               "complete": lambda: phone.step("complete")}
    order = list(actions)
    try:
        for earlier in order[: order.index(step)]:
            actions[earlier]()
        before = _counts(db)
        errors: list[Exception] = []

        def call() -> None:
            try:
                actions[step]()
            except AuthorityError as exc:
                errors.append(exc)

        caller = threading.Thread(target=call)
        caller.start()
        assert _line(proc, 30) == f"PAUSED {step}"
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        caller.join(30)
        assert errors and errors[0].unreachable
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    assert _counts(db) == before
    proc2, url2 = _start_process(db)
    try:
        phone.client = AuthorityClient(url2, timeout=30)
        for again in order[order.index(step):]:
            actions[again]()
        after = _counts(db)
        assert (after["ceremonies"], after["certificates"], after["bindings"]) == (1, 2, 1)
    finally:
        proc2.send_signal(signal.SIGINT)
        proc2.wait(10)


def _counts(db: Path) -> dict[str, int]:
    conn = sqlite3.connect(db)
    try:
        return {t: conn.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0]
                for t in ("ceremonies", "certificates", "bindings", "requests")}
    finally:
        conn.close()
