*** Settings ***
Documentation       Conformance of the My Number card's JPKI AP and text AP (JPKI-FACTS §1-§6).
...                 Each test is one requirement; its ID is a tag (``JPKI-…``, ``TXT-…``, ``ISO-…``).
Metadata            Reference    ../shared/JPKI-FACTS.md
