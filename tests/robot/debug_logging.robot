*** Settings ***
Documentation       Test data for tests/test_report_scan.py, not a conformance suite: the PIN and text-AP keywords
...                 with the backends' own debug logging on (nfcpy, pyserial, pyscard, urllib3 at level 1), so every
...                 frame they log reaches Robot's log at TRACE. Nothing secret may come out in clear.
Library             harness.keywords.JPKILibrary
Suite Setup         Open Device With Debug Logging
Suite Teardown      Close Device
Test Teardown       Log APDU Trace


*** Variables ***
${DEVICE}       virtual:card?via=nfc


*** Test Cases ***
Text PIN Then My Number
    Verify PIN    text
    ${number}=    Read My Number
    My Number Should Be Expected    ${number}

Collation Numbers Then Basic Four
    Verify Collation Number    A
    Verify Collation Number    B
    ${basic}=    Read Basic Four
    Basic Four Should Be Expected    ${basic}

Auth And Sign PINs Then The Sign Certificate
    Verify PIN    auth
    Verify PIN    sign
    ${der}=    Read Certificate    sign
    Sign Certificate Should Carry Holder    ${der}

A Wrong PIN Then The Right One
    ${status}=    Verify Wrong PIN    auth
    Should Be Equal    ${status}    63C2
    Verify PIN    auth


*** Keywords ***
Open Device With Debug Logging
    [Documentation]    nfcpy sets its logger to INFO when imported: import it first, then lower the levels.
    Evaluate    [logging.getLogger(n).setLevel(1) for n in ("nfc", "serial", "smartcard", "urllib3")]
    ...    modules=logging,nfc,serial,smartcard
    Open Device    ${DEVICE}
