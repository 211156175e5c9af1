"""The relying-party emulator over real HTTP on 127.0.0.1, with its real OCSP responder and the test PKI."""

from __future__ import annotations

import base64
import json
import socket
import time
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.padding import PKCS1v15
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509 import ocsp

from harness.pki import profile, revocation, testpki
from harness.relying_party import OcspResponder, PlatformConfig, RelyingParty, RelyingPartyClient, RpError

BOOKING = {"facility": "gym-a", "date": "2026-12-01", "slot": "09:00"}


pytestmark = pytest.mark.usefixtures("no_thread_leak")  # tests/conftest.py


@pytest.fixture(scope="module")
def test_pki() -> testpki.TestPki:
    return testpki.load_test_pki()


@pytest.fixture
def rp() -> Iterator[RelyingParty]:
    with RelyingParty(PlatformConfig(tx_ttl=5)) as server:
        yield server


def sign(holder: testpki.HolderPki, data: bytes) -> bytes:
    """What the card does: PKCS#1 v1.5 over SHA-256 with the auth key."""
    return holder.auth_key().sign(data, PKCS1v15(), hashes.SHA256())


def der(cert) -> bytes:
    return cert.public_bytes(Encoding.DER)


def login(rp: RelyingParty, holder: testpki.HolderPki, terminal: str = "STB-T1",
          kind: str = "stb") -> RelyingPartyClient:
    client = RelyingPartyClient(rp.url, terminal, kind)
    challenge_id, challenge = client.challenge("portal")
    client.login(challenge_id, der(holder.auth_cert), sign(holder, challenge))
    return client


def raw(rp: RelyingParty, method: str, path: str, body: bytes | None = None, headers: dict | None = None):
    request = urllib.request.Request(f"{rp.url}{path}", data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=5) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


# --- login ------------------------------------------------------------------------------------------------------


def test_login_links_the_cn_to_a_stable_platform_id(rp, test_pki) -> None:
    card = test_pki.holder("card")
    first = login(rp, card)
    second = login(rp, card, terminal="KIOSK-T2", kind="kiosk")
    platform = rp.platform
    assert first.session and second.session and first.session != second.session
    assert platform.links == {profile.auth_identifier(card.auth_cert): "PF-000001"}
    logins = platform.audit(event="login")
    assert [r.detail.split(";")[0] for r in logins] == ["link created", "link existing"]
    assert [entry.status for entry in rp.ocsp.log] == ["good", "good"]


def test_a_revoked_certificate_is_refused_by_ocsp_and_crl(rp, test_pki) -> None:
    with pytest.raises(RpError) as info:
        login(rp, test_pki.holder("revoked"))
    assert info.value.code == "revoked" and info.value.status == 403
    assert "OCSP revoked, CRL revoked" in str(info.value)
    assert rp.platform.links == {}
    assert rp.platform.audit(event="login")[-1].outcome == "refused"


def test_ocsp_alone_can_revoke_a_certificate(rp, test_pki) -> None:
    card = test_pki.holder("card")
    rp.ocsp.set_status(card.auth_cert.serial_number, revocation.RevocationStatus.REVOKED)
    with pytest.raises(RpError, match=r"OCSP revoked, CRL good"):
        login(rp, card)
    rp.ocsp.set_status(card.auth_cert.serial_number, None)
    assert login(rp, card).session


def test_bad_signatures_used_challenges_and_other_terminals_are_refused(rp, test_pki) -> None:
    card = test_pki.holder("card")
    client = RelyingPartyClient(rp.url, "STB-T1")
    challenge_id, challenge = client.challenge("portal")
    with pytest.raises(RpError) as info:
        client.login(challenge_id, der(card.auth_cert), sign(card, challenge + b"!"))
    assert info.value.code == "bad_signature" and info.value.status == 401
    with pytest.raises(RpError, match="already used") as info:
        client.login(challenge_id, der(card.auth_cert), sign(card, challenge))
    other = RelyingPartyClient(rp.url, "STB-OTHER")
    challenge_id, challenge = client.challenge("portal")
    with pytest.raises(RpError) as info:
        other.login(challenge_id, der(card.auth_cert), sign(card, challenge))
    assert info.value.code == "bad_challenge"


def test_a_sign_certificate_is_not_an_auth_certificate(rp, test_pki) -> None:
    card = test_pki.holder("card")
    client = RelyingPartyClient(rp.url, "STB-T1")
    challenge_id, challenge = client.challenge("portal")
    signature = card.sign_key().sign(challenge, PKCS1v15(), hashes.SHA256())
    with pytest.raises(RpError) as info:
        client.login(challenge_id, der(card.sign_cert), signature)
    assert info.value.code == "not_auth_certificate"


def test_an_unreachable_ocsp_responder_fails_closed(test_pki) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{probe.getsockname()[1]}/ocsp"
    with RelyingParty(PlatformConfig(ocsp_url=dead)) as rp:
        assert rp.ocsp is None
        with pytest.raises(RpError) as info:
            login(rp, test_pki.holder("card"))
        assert info.value.code == "revocation_unavailable" and info.value.status == 503


# --- the OCSP responder -----------------------------------------------------------------------------------------


def test_ocsp_responder_answers_post_and_get_with_nonce(test_pki) -> None:
    card = test_pki.holder("card").auth_cert
    root = test_pki.auth_root
    nonce = b"0123456789abcdef"
    request = revocation.build_ocsp_request(card, root, nonce=nonce)
    with OcspResponder(test_pki) as responder:
        posted = urllib.request.Request(f"{responder.url}/auth", data=request,
                                        headers={"Content-Type": "application/ocsp-request"})
        with urllib.request.urlopen(posted, timeout=5) as answer:
            assert answer.headers["Content-Type"] == "application/ocsp-response"
            body = answer.read()
        assert revocation.check_ocsp_response(body, card, root, nonce=nonce) is revocation.RevocationStatus.GOOD
        encoded = base64.b64encode(revocation.build_ocsp_request(card, root)).decode()
        with urllib.request.urlopen(f"{responder.url}/auth/{encoded}", timeout=5) as answer:
            assert revocation.check_ocsp_response(answer.read(), card, root) is revocation.RevocationStatus.GOOD
        unknown = revocation.build_ocsp_request(test_pki.auth.ocsp_cert, root)  # a serial the responder did not issue
        status = ocsp.load_der_ocsp_response(responder.answer("auth", unknown)).response_status
        assert status is ocsp.OCSPResponseStatus.UNAUTHORIZED
        malformed = ocsp.load_der_ocsp_response(responder.answer("auth", b"\x30\x00")).response_status
        assert malformed is ocsp.OCSPResponseStatus.MALFORMED_REQUEST
    assert [entry.status for entry in responder.log] == ["good", "good", "unauthorized", "malformed"]


# --- transactions ------------------------------------------------------------------------------------------------


def test_a_booking_commits_booking_and_fee_together(rp, test_pki) -> None:
    card = test_pki.holder("card")
    client = login(rp, card)
    tx, summary, confirm = client.begin("facility_booking", BOOKING)
    assert "市民体育館" in summary and rp.platform.snapshot()["pending"] == [tx]
    result = client.commit(tx, sign(card, confirm))
    assert result["status"] == "committed"
    state = client.state()
    assert state["bookings"] == {"gym-a/2026-12-01/09:00": "PF-000001"}
    assert [p["amount"] for p in state["payments"]] == [500] and state["pending"] == []
    with pytest.raises(RpError) as info:
        client.begin("facility_booking", BOOKING)
    assert info.value.code == "slot_taken" and info.value.status == 409


def test_a_commit_that_fails_its_checks_applies_nothing(rp, test_pki) -> None:
    card = test_pki.holder("card")
    first, second = login(rp, card), login(rp, card, terminal="STB-T2")
    tx1, _, confirm1 = first.begin("facility_booking", BOOKING)
    tx2, _, confirm2 = second.begin("facility_booking", BOOKING)  # both pending for the same slot
    first.commit(tx1, sign(card, confirm1))
    with pytest.raises(RpError) as info:
        second.commit(tx2, sign(card, confirm2))
    assert info.value.code == "slot_taken"
    state = second.state()
    assert len(state["payments"]) == 1 and state["bookings"]["gym-a/2026-12-01/09:00"] == "PF-000001"
    assert second.transaction(tx2)["status"] == "refused"


def test_a_wrong_confirmation_signature_applies_nothing(rp, test_pki) -> None:
    card = test_pki.holder("card")
    client = login(rp, card, terminal="KIOSK-T1", kind="kiosk")
    tx, _, confirm = client.begin("payment", {"amount": 1500})
    with pytest.raises(RpError) as info:
        client.commit(tx, sign(card, confirm + b"tampered"))
    assert info.value.code == "bad_signature"
    assert client.state()["payments"] == [] and client.transaction(tx)["status"] == "refused"


def test_abort_and_expiry_leave_nothing_half_done(test_pki) -> None:
    with RelyingParty(PlatformConfig(tx_ttl=0.2)) as rp:
        card = test_pki.holder("card")
        client = login(rp, card, terminal="KIOSK-T1", kind="kiosk")
        aborted, _, _ = client.begin("payment", {"amount": 800})
        assert client.abort(aborted, "card_removed")["status"] == "aborted"
        expired, _, confirm = client.begin("shelter_check_in", {"shelter": "school-1"})
        time.sleep(0.3)
        with pytest.raises(RpError) as info:
            client.commit(expired, sign(card, confirm))
        assert info.value.code == "tx_expired" and info.value.status == 409
        state = client.state()
        assert state["payments"] == [] and state["occupancy"]["school-1"] == [] and state["pending"] == []
        events = [(r["event"], r["outcome"]) for r in client.audit(terminal="KIOSK-T1")]
        assert ("tx_abort", "aborted") in events and ("tx_expired", "expired") in events
        assert ("tx_commit", "committed") not in events


def test_services_are_limited_by_terminal_kind(rp, test_pki) -> None:
    client = login(rp, test_pki.holder("card"), kind="stb")
    with pytest.raises(RpError) as info:
        client.begin("certificate_issuance", {"document": "residence", "copies": 1})
    assert info.value.code == "service_not_allowed"


def test_issuance_needs_the_registered_holders_basic_four(rp, test_pki) -> None:
    card = test_pki.holder("card")
    client = login(rp, card, terminal="KIOSK-T1", kind="kiosk")
    params = {"document": "residence", "copies": 1, "name": card.data["name"], "address": "どこか"}
    with pytest.raises(RpError) as info:
        client.begin("certificate_issuance", params)
    assert info.value.code == "holder_mismatch"
    tx, _, confirm = client.begin("certificate_issuance", params | {"address": card.data["address"]})
    assert client.commit(tx, sign(card, confirm))["result"]["number"] == "DOC-000001"


# --- read-only services, audit and HTTP hygiene ----------------------------------------------------------------------


def test_eligibility_by_certificate_serial_and_health_records(rp, test_pki) -> None:
    card = login(rp, test_pki.holder("card"), terminal="KIOSK-T1", kind="kiosk")
    answer = card.eligibility()
    assert answer["insured_number"] == "12-345678" and answer["insurer"] == "06139999"
    assert answer["serial"] == f"{test_pki.holder('card').auth_cert.serial_number:x}"
    phone = login(rp, test_pki.holder("phone"), terminal="KIOSK-T2", kind="kiosk")
    with pytest.raises(RpError) as info:
        phone.eligibility()
    assert info.value.code == "not_insured"
    assert len(login(rp, test_pki.holder("card")).health_records()) == 2


def test_audit_log_over_http_filters_by_terminal_event_and_since(rp, test_pki) -> None:
    login(rp, test_pki.holder("card"), terminal="A")
    mark = rp.platform.last_seq()
    login(rp, test_pki.holder("card"), terminal="B")
    observer = RelyingPartyClient(rp.url, "OBSERVER")
    assert {r["terminal"] for r in observer.audit(event="login")} == {"A", "B"}
    assert [r["event"] for r in observer.audit(terminal="B")] == ["challenge", "login"]
    assert [r["terminal"] for r in observer.audit(since=mark)] == ["B", "B"]


def test_bad_requests_are_json_errors(rp) -> None:
    status, body = raw(rp, "POST", "/api/challenges", b"{not json", {"X-Terminal-Id": "T", "Content-Type": "x"})
    assert status == 400 and body["error"] == "bad_request" and "not JSON" in body["message"]
    status, body = raw(rp, "POST", "/api/challenges", b"{}")
    assert status == 400 and "X-Terminal-Id" in body["message"]
    status, body = raw(rp, "GET", "/api/health-records", headers={"X-Terminal-Id": "T"})
    assert status == 401 and body["error"] == "no_session"
    status, body = raw(rp, "GET", "/nowhere")
    assert status == 404
    status, body = raw(rp, "POST", "/api/sessions", json.dumps({"certificate": "%%%"}).encode(),
                       {"X-Terminal-Id": "T"})
    assert status == 400 and "base64" in body["message"]


def test_stop_releases_both_ports() -> None:
    rp = RelyingParty().start()
    ports = (rp.port, rp.ocsp.port)
    rp.stop()
    for port in ports:
        with pytest.raises(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
            pass
