*** Settings ***
Documentation       What ends a ceremony without a phone: a wrong sign password (counted once by the card, the
...                 tries shown, never retried by the app), a revoked card, an expired card. Nothing is issued.
Resource            ../resources/ceremony.resource
Suite Setup         Open Ceremony Devices Under Test
Suite Teardown      Close Ceremony Devices Under Test
Test Setup          Begin Ceremony Requirement
Test Teardown       End Ceremony Requirement


*** Test Cases ***
A Wrong Sign Password Is Counted Once And Ends The Ceremony
    [Documentation]    The app sends the wrong password once, shows the tries left and cancels the ceremony at
    ...                the authority; the phone keeps only its fresh keys. The correct password then restores the
    ...                card's counter (a successful VERIFY resets it, JPKI-FACTS §3).
    [Tags]    CER-REF-001    destructive
    Use Ceremony Device As Device Under Test    card
    ${before}=    Query PIN Tries    sign
    Enter Wrong Sign Password In App
    ${result}=    Run Phone Download Ceremony
    Ceremony Should End With    ${result}    wrong_pin    card
    ${after}=    Query PIN Tries    sign
    Should Be Equal As Integers    ${after}    ${before - 1}
    Should Be Equal As Integers    ${result.tries_left}    ${after}
    Ceremony Status At Authority Should Be    ${result}    cancelled
    Authority Should Hold    certificates=0    bindings=0
    Phone Provisioning State Should Be    keys_generated
    ${again}=    Run Phone Download Ceremony
    Ceremony Should Succeed    ${again}
    ${restored}=    Query PIN Tries    sign
    Should Be Equal As Integers    ${restored}    ${before}

A Revoked Card Is Refused
    [Documentation]    ``revoked-card``: its sign certificate is in the CRL and OCSP answers revoked.
    [Tags]    CER-REF-002
    Swap In Card Of Profile    revoked-card
    ${result}=    Run Phone Download Ceremony
    Ceremony Should End With    ${result}    refused    apply
    Should Contain    ${result.detail}    revoked
    Ceremony Status At Authority Should Be    ${result}    refused
    Authority Should Hold    certificates=0    bindings=0
    [Teardown]    Run Keywords    End Ceremony Requirement    AND    Put Card Back

An Expired Card Is Refused
    [Documentation]    Nine years on (the card's certificate ends on the 5th birthday after issuance, §6; the test
    ...                CA lives 20 years) the authority refuses the card as expired.
    [Tags]    CER-REF-003
    Move Authority Clock    ${9 * 365 * 86400}
    ${result}=    Run Phone Download Ceremony
    Ceremony Should End With    ${result}    refused    apply
    Should Contain    ${result.detail}    expired
    Authority Should Hold    certificates=0    bindings=0
