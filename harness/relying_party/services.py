"""The platform's services: what each one checks, how it reads to the person, and what committing it does.

Each service is a (check, summary) pair and a branch of :meth:`ServiceRules.apply`. The data tables
(facilities, documents, shelters, the watch contact) come from ``platform.toml``; the committed effects
(bookings, payments, issued certificates, watch log, shelter occupancy) live here, changed only by
``apply``, which the platform calls under its lock after every check passed.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from harness.pki import testpki

from .records import Refused, Session, Transaction, now_iso

Check = Callable[[Session, dict], None]
Summary = Callable[[Session, dict], str]


class ServiceRules:
    """Per-service rules and the effects they commit; not thread-safe on its own (the platform locks)."""

    def __init__(self, data: dict[str, Any], test_pki: testpki.TestPki) -> None:
        self.pki = test_pki
        self.facilities: dict[str, dict[str, Any]] = data.get("facilities", {})
        self.documents: dict[str, dict[str, Any]] = data.get("documents", {})
        self.shelters: dict[str, dict[str, Any]] = data.get("shelters", {})
        self.watch_notify: str = data.get("watch", {}).get("notify", "")
        # committed effects: what a half-done transaction must never leave behind
        self.bookings: dict[str, str] = {}  # "facility/date/slot" → platform ID
        self.payments: list[dict[str, Any]] = []
        self.issued: list[dict[str, Any]] = []
        self.watch_log: list[dict[str, Any]] = []
        self.occupancy: dict[str, list[str]] = {name: [] for name in self.shelters}

    def effects(self) -> dict[str, Any]:
        """A copy of every committed effect, for a snapshot."""
        return {
            "bookings": dict(self.bookings),
            "payments": [dict(p) for p in self.payments],
            "issued": [dict(i) for i in self.issued],
            "watch_log": [dict(w) for w in self.watch_log],
            "occupancy": {k: list(v) for k, v in self.occupancy.items()},
        }

    def plan(self, service: str) -> tuple[Check, Summary]:
        plans = {
            "facility_booking": (self._check_booking, self._summary_booking),
            "watch_check_in": (lambda s, p: None, lambda s, p: f"見守りチェックイン: {p.get('status', '元気')}"),
            "certificate_issuance": (self._check_issuance, self._summary_issuance),
            "payment": (self._check_payment, lambda s, p: f"お支払い {int(p['amount']):,}円 ({p.get('purpose', '')})"),
            "shelter_check_in": (self._check_shelter_in, lambda s, p: f"入所: {self.shelters[p['shelter']]['name']}"),
            "shelter_check_out": (self._check_shelter_out, lambda s, p: f"退所: {self.shelters[p['shelter']]['name']}"),
        }
        if service not in plans:
            raise Refused("unknown_service", f"unknown service {service!r}", 400)
        return plans[service]

    def _param(self, params: dict, key: str, table: dict | None = None) -> Any:
        if key not in params:
            raise Refused("bad_request", f"missing parameter {key!r}", 400)
        value = params[key]
        if table is not None and value not in table:
            raise Refused("bad_request", f"unknown {key} {value!r}; known: {', '.join(table)}", 400)
        return value

    def _check_booking(self, session: Session, params: dict) -> None:
        facility = self.facilities[self._param(params, "facility", self.facilities)]
        slot = self._param(params, "slot")
        if slot not in facility["slots"]:
            raise Refused("bad_request", f"{facility['name']} has no slot {slot}", 400)
        key = f"{params['facility']}/{self._param(params, 'date')}/{slot}"
        if key in self.bookings:
            raise Refused("slot_taken", f"{facility['name']} {params['date']} {slot} is already booked", 409)

    def _summary_booking(self, session: Session, params: dict) -> str:
        facility = self.facilities[params["facility"]]
        return f"施設予約: {facility['name']} {params['date']} {params['slot']} 利用料 {facility['fee']}円"

    def _check_issuance(self, session: Session, params: dict) -> None:
        self._param(params, "document", self.documents)
        copies = self._param(params, "copies")
        if not isinstance(copies, int) or not 1 <= copies <= 10:
            raise Refused("bad_request", "copies must be 1..10", 400)
        # 券面事項 read by the kiosk must match the resident registry (the holder of the linked certificate)
        holder = session.identity.holder
        expected = self.pki.holder(holder).data if holder else {}
        for field_name in ("name", "address"):
            if params.get(field_name) != expected.get(field_name):
                raise Refused("holder_mismatch", f"the card's {field_name} differs from the resident registry")

    def _summary_issuance(self, session: Session, params: dict) -> str:
        document = self.documents[params["document"]]
        copies = int(params["copies"])
        return f"証明書交付: {document['name']} {copies}通 手数料 {document['fee'] * copies}円"

    def _check_payment(self, session: Session, params: dict) -> None:
        amount = self._param(params, "amount")
        if not isinstance(amount, int) or not 1 <= amount <= 1_000_000:
            raise Refused("bad_request", "amount must be 1..1,000,000 yen", 400)

    def _check_shelter_in(self, session: Session, params: dict) -> None:
        shelter = self._param(params, "shelter", self.shelters)
        occupants = self.occupancy[shelter]
        if session.identity.platform_id in occupants:
            raise Refused("already_checked_in", f"already checked in at {self.shelters[shelter]['name']}", 409)
        if len(occupants) >= self.shelters[shelter]["capacity"]:
            raise Refused("shelter_full", f"{self.shelters[shelter]['name']} is full", 409)

    def _check_shelter_out(self, session: Session, params: dict) -> None:
        shelter = self._param(params, "shelter", self.shelters)
        if session.identity.platform_id not in self.occupancy[shelter]:
            raise Refused("not_checked_in", f"not checked in at {self.shelters[shelter]['name']}", 409)

    def apply(self, tx: Transaction) -> dict[str, Any]:
        """All effects of one transaction; called under the lock after every check passed."""
        pid, p = tx.platform_id, tx.params
        receipt = {"tx": tx.id, "platform_id": pid, "at": now_iso()}
        if tx.service == "facility_booking":
            fee = self.facilities[p["facility"]]["fee"]
            self.bookings[f"{p['facility']}/{p['date']}/{p['slot']}"] = pid
            self.payments.append({**receipt, "amount": fee, "purpose": "facility_booking"})
            return {"booking": f"{p['facility']}/{p['date']}/{p['slot']}", "fee": fee}
        if tx.service == "watch_check_in":
            self.watch_log.append({**receipt, "status": p.get("status", "元気"), "notified": self.watch_notify})
            return {"notified": self.watch_notify}
        if tx.service == "certificate_issuance":
            document = self.documents[p["document"]]
            fee = document["fee"] * int(p["copies"])
            number = f"DOC-{len(self.issued) + 1:06d}"
            self.issued.append({**receipt, "number": number, "document": p["document"], "copies": p["copies"],
                                "name": p["name"], "address": p["address"]})
            self.payments.append({**receipt, "amount": fee, "purpose": f"certificate:{p['document']}"})
            return {"number": number, "fee": fee, "document": document["name"]}
        if tx.service == "payment":
            self.payments.append({**receipt, "amount": int(p["amount"]), "purpose": p.get("purpose", "")})
            return {"receipt": f"RC-{len(self.payments):06d}", "amount": int(p["amount"])}
        if tx.service == "shelter_check_in":
            self.occupancy[p["shelter"]].append(pid)
            return {"shelter": p["shelter"], "name": self.shelters[p["shelter"]]["name"],
                    "occupants": len(self.occupancy[p["shelter"]])}
        if tx.service == "shelter_check_out":
            self.occupancy[p["shelter"]].remove(pid)
            return {"shelter": p["shelter"], "name": self.shelters[p["shelter"]]["name"],
                    "occupants": len(self.occupancy[p["shelter"]])}
        raise Refused("unknown_service", f"unknown service {tx.service!r}", 400)
