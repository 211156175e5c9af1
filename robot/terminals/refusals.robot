*** Settings ***
Documentation       What every terminal must refuse or undo: revoked certificates, a card pulled mid-flow, and
...                 wrong PINs (counted once by the card, never retried by the terminal, tries left shown).
Resource            ../resources/terminal.resource
Suite Setup         Start Relying Party
Suite Teardown      Close Terminal Under Test
Test Setup          Start APDU Trace
Test Teardown       End Refusal Requirement
Test Tags           terminal


*** Variables ***
${STB}                  virtual:card?via=stb
${KIOSK}                virtual:card?via=kiosk
${REVOKED_STB}          virtual:revoked-card?via=stb
${REVOKED_KIOSK}        virtual:revoked-card?via=kiosk


*** Test Cases ***
A Revoked Certificate Is Refused At Set-Top Box Login
    [Documentation]    ``revoked-card``: its certificates are in the CRL and OCSP answers revoked. No platform ID
    ...                is linked, and the screen says why.
    [Tags]    STB-REVOKE-001    stb
    Open Terminal    ${REVOKED_STB}    kind=stb
    ${result}=    Log In On Terminal
    Flow Should End With    ${result}    revoked
    OCSP Should Have Answered    revoked
    Audit Log Should Contain    event=login    outcome=refused    detail=revoked
    Terminal Display Should Contain    失効

A Revoked Certificate Issues Nothing At The Kiosk
    [Tags]    KIOSK-REVOKE-001    kiosk
    Open Terminal    ${REVOKED_KIOSK}    kind=kiosk
    Take Relying Party Snapshot
    ${result}=    Issue Certificate At Kiosk    residence
    Flow Should End With    ${result}    revoked
    Relying Party Effects Should Be Unchanged
    No Transaction Should Be Pending

A Card Pulled During A Booking Leaves No Half-Done Transaction
    [Tags]    STB-PULL-001    stb    fault
    ${name}=    Device Or Default    ${STB}
    Open Terminal    ${name}    kind=stb
    ${login}=    Log In On Terminal
    Flow Should Succeed    ${login}
    Take Relying Party Snapshot
    Pull Card During Command    SIGN
    ${result}=    Book Facility    gym-a    2026-12-24    13:00
    Flow Should End With    ${result}    card_removed
    ${tx}=    Get Flow Value    ${result}    tx
    Transaction Status Should Be    ${tx}    aborted
    Audit Log Should Not Contain    event=tx_commit    tx=${tx}
    Relying Party Effects Should Be Unchanged
    No Transaction Should Be Pending

A Card Pulled While The Kiosk Reads The Basic Four Issues Nothing
    [Tags]    KIOSK-PULL-001    kiosk    fault
    ${name}=    Device Or Default    ${KIOSK}
    Open Terminal    ${name}    kind=kiosk
    Take Relying Party Snapshot
    Pull Card During Command    READ BINARY
    ${result}=    Issue Certificate At Kiosk    residence
    Flow Should End With    ${result}    card_removed
    Relying Party Effects Should Be Unchanged
    No Transaction Should Be Pending
    Terminal Display Should Contain    カードが取り外されました

A Wrong Auth PIN Costs Exactly One Try And Is Not Retried
    [Documentation]    A correct PIN waits on the remote after the wrong one: the terminal must not use it on its
    ...                own. The card's counter drops by one and the screen shows the tries left.
    [Tags]    STB-PIN-001    stb    destructive
    ${name}=    Device Or Default    ${STB}
    ${terminal}=    Open Terminal    ${name}    kind=stb
    ${before}=    Query PIN Tries    auth
    Enter Wrong PIN On Terminal    auth
    Enter PIN On Terminal    auth
    ${result}=    Log In On Terminal
    Flow Should End With    ${result}    wrong_pin
    ${after}=    Query PIN Tries    auth
    Should Be Equal As Integers    ${after}    ${before - 1}
    ${shown}=    Get Flow Value    ${result}    tries_left
    Should Be Equal As Integers    ${shown}    ${after}
    Terminal Display Should Contain    残り${after}回
    Audit Log Should Not Contain    event=login    outcome=ok    terminal=${terminal}

A Wrong Auth PIN At The Hospital Kiosk Is Counted Once
    [Tags]    HOSP-PIN-001    kiosk    destructive
    ${name}=    Device Or Default    ${KIOSK}
    Open Terminal    ${name}    kind=kiosk
    ${before}=    Query PIN Tries    auth
    Enter Wrong PIN On Terminal    auth
    ${result}=    Check Insurance Eligibility
    Flow Should End With    ${result}    wrong_pin
    ${after}=    Query PIN Tries    auth
    Should Be Equal As Integers    ${after}    ${before - 1}
    Terminal Display Should Contain    残り${after}回


*** Keywords ***
End Refusal Requirement
    [Documentation]    Logs the trace and closes the requirement's own terminal (with its card and firmware).
    Log APDU Trace
    Close Terminal
