*** Settings ***
Documentation       Conformance of the My Number card: JPKI AP, text AP, 券面事項確認AP, 共通AP and 住基AP (JPKI-FACTS §1-§6, §10).
...                 Each test is one requirement; its ID is a tag (``JPKI-…``, ``TXT-…``, ``VIS-…``, ``CMN-…``, ``JUKI-…``, ``ISO-…``).
Metadata            Reference    ../shared/JPKI-FACTS.md
