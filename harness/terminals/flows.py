"""The set-top box and kiosk service flows, and opening a terminal by device name.

Each flow is one body run by :meth:`~harness.terminals.terminal.ServiceTerminal._run` over the shared
steps; which terminal a reader sits in comes from its name (``via=stb|kiosk``, ``terminal=…``) or from
the serial protocol's own terminal.
"""

from __future__ import annotations

from typing import Any

from devices import open_device
from devices.base import DeviceError, Reader
from devices.uri import DeviceUri
from harness.jpki import PinKind
from harness.trace import ApduTrace

from .terminal import FlowResult, ServiceTerminal


class SetTopBox(ServiceTerminal):
    """A CATV set-top box with a card reader, used with the TV remote."""

    kind = "stb"

    def book_facility(self, facility: str, date: str, slot: str) -> FlowResult:
        def body(box: dict[str, str]) -> dict[str, Any]:
            self._ensure_login("facility_booking")
            result = self._transaction("facility_booking", {"facility": facility, "date": date, "slot": slot}, box)
            self.display.show("booked", summary=result["summary"])
            return result

        return self._run("book_facility", body)

    def view_health_records(self) -> FlowResult:
        def body(box: dict[str, str]) -> dict[str, Any]:
            self._ensure_login("health_records")
            records = self.rp.health_records()
            self.display.show("records", count=len(records))
            return {"records": records}

        return self._run("view_health_records", body)

    def watch_check_in(self, status: str = "元気") -> FlowResult:
        def body(box: dict[str, str]) -> dict[str, Any]:
            self._ensure_login("watch_check_in")
            result = self._transaction("watch_check_in", {"status": status}, box)
            self.display.show("watch_done", notified=result["notified"])
            return result

        return self._run("watch_check_in", body)


class Kiosk(ServiceTerminal):
    """A multi-function kiosk (convenience store, hospital reception, shelter reception) with a PIN pad."""

    kind = "kiosk"

    def issue_certificate(self, document: str = "residence", copies: int = 1) -> FlowResult:
        """コンビニ交付: basic four from the text AP (text PIN), login, then the issuance transaction."""
        def body(box: dict[str, str]) -> dict[str, Any]:
            self._card_ready()
            self._verify(PinKind.TEXT)
            basic = self.card.read_basic_four()
            self.display.show("basic_four", name=basic.name, address=basic.address)
            self._login("certificate_issuance")
            params = {"document": document, "copies": int(copies), "name": basic.name, "address": basic.address}
            result = self._transaction("certificate_issuance", params, box)
            self.display.show("issued", document=result["document"], copies=copies, number=result["number"],
                              fee=result["fee"])
            return result | {"name": basic.name, "address": basic.address}

        return self._run("issue_certificate", body)

    def check_eligibility(self) -> FlowResult:
        """オンライン資格確認 at a hospital reception: the insurance linked to the auth certificate serial."""
        def body(box: dict[str, str]) -> dict[str, Any]:
            self._ensure_login("eligibility")
            result = self.rp.eligibility()
            self.display.show("eligible", insurer=result["insurer"], insured_number=result["insured_number"],
                              copay_pct=round(result["copay"] * 10))
            return result

        return self._run("check_eligibility", body)

    def pay(self, amount: int, purpose: str = "外来診療費") -> FlowResult:
        def body(box: dict[str, str]) -> dict[str, Any]:
            self._ensure_login("payment")
            result = self._transaction("payment", {"amount": int(amount), "purpose": purpose}, box)
            self.display.show("paid", amount=f"{result['amount']:,}", receipt=result["receipt"])
            return result

        return self._run("pay", body)

    def shelter_check_in(self, shelter: str) -> FlowResult:
        return self._shelter("shelter_check_in", shelter, "shelter_in")

    def shelter_check_out(self, shelter: str) -> FlowResult:
        return self._shelter("shelter_check_out", shelter, "shelter_out")

    def _shelter(self, service: str, shelter: str, screen: str) -> FlowResult:
        def body(box: dict[str, str]) -> dict[str, Any]:
            self._ensure_login(service)
            result = self._transaction(service, {"shelter": shelter}, box)
            self.display.show(screen, shelter=result.get("name", shelter), occupants=result["occupants"])
            return result

        return self._run(service, body)


TERMINAL_KINDS: dict[str, type[ServiceTerminal]] = {"stb": SetTopBox, "kiosk": Kiosk}


def terminal_kind_of(uri: str, reader: Reader | None = None) -> str:
    """The kind a device name implies: ``via=stb|kiosk``, ``terminal=…``, or the serial protocol's terminal."""
    options = DeviceUri.parse(uri).options if ":" in uri else {}
    for key in ("terminal", "via"):
        value = options.get(key, "")
        if value in TERMINAL_KINDS:
            return value
    return reader.terminal_kind if reader is not None else ""


def open_terminal(uri: str, relying_party: str, *, kind: str = "", terminal_id: str = "",
                  trace: ApduTrace | None = None, **options: Any) -> ServiceTerminal:
    """Opens the reader ``uri`` and wraps it in a kiosk or set-top box talking to ``relying_party``."""
    reader = open_device(uri)
    try:
        chosen = kind or terminal_kind_of(uri, reader)
        if chosen not in TERMINAL_KINDS:
            raise DeviceError(f"{uri}: say which terminal this reader is in: kind={'|'.join(TERMINAL_KINDS)}")
        return TERMINAL_KINDS[chosen](reader, relying_party, terminal_id=terminal_id, trace=trace, uri=uri,
                                      **options)
    except BaseException:
        reader.close()
        raise
