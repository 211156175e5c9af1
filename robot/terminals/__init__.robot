*** Settings ***
Documentation       Kiosk and set-top box service flows from the planning document (ICT利活用WG: CATV STB,
...                 convenience-store issuance, hospital reception, shelters), run against a relying-party
...                 platform emulator with a real OCSP responder. Each test is one requirement; its ID is a
...                 tag (``STB-…``, ``KIOSK-…``, ``HOSP-…``, ``SHELTER-…``), with ``terminal`` and the terminal kind.
Metadata            Reference    ../shared/seeds (planning document), ../shared/JPKI-FACTS.md
