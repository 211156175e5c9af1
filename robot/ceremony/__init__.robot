*** Settings ***
Documentation       The smartphone download ceremony (スマートフォンへの利用者証明機能ダウンロード, JPKI-FACTS §8):
...                 the app has the card sign an application for the phone's own keys, a virtual issuing authority
...                 (J-LIS stand-in, SQLite records, OCSP) issues the phone's certificates, the phone's secure element
...                 stores them and takes its own PINs. Each test is one requirement; its ID is a ``CER-…`` tag
...                 The phone's provisioning commands are our ASSUMPTION (ISO 7816-8), see devices/virtual/provisioning.py.
Metadata            Reference    ../shared/seeds (planning document), ../shared/JPKI-FACTS.md §6 §8
Test Tags           ceremony
