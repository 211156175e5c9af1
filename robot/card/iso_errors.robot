*** Settings ***
Documentation       ISO 7816-4 error handling: the card answers every malformed command with a status word.
Resource            ../resources/card.resource
Suite Setup         Open Card Under Test
Suite Teardown      Close Device
Test Setup          Begin Requirement
Test Teardown       End Requirement
Test Tags           card    iso


*** Test Cases ***
Unknown Instruction Answers 6D00
    [Tags]    ISO-ERR-001
    ${r}=    Send APDU    00 EE 00 00
    Status Word Should Be    ${r}    6D00

Unknown Class Answers 6E00
    [Tags]    ISO-ERR-002
    ${r}=    Send APDU    A0 A4 04 0C 0A D3 92 F0 00 26 01 00 00 00 01
    Status Word Should Be    ${r}    6E00

Wrong P1 P2 Answers 6A86
    [Tags]    ISO-ERR-003
    ${r}=    Send APDU    00 A4 07 0C 0A D3 92 F0 00 26 01 00 00 00 01
    Status Word Should Be    ${r}    6A86

Wrong Length Answers 6700
    [Tags]    ISO-ERR-004
    ${r}=    Send APDU    00 A4 04 0C 0A D3 92 F0
    Status Word Should Be    ${r}    6700

Logical Channel Answers 6881
    [Tags]    ISO-ERR-005    uncertain
    ${r}=    Send APDU    01 A4 04 0C 0A D3 92 F0 00 26 01 00 00 00 01
    Status Word Should Be    ${r}    6881

READ BINARY Without A Current EF Answers 6986
    [Tags]    ISO-ERR-006
    Select JPKI AP
    ${r}=    Send APDU    00 B0 00 00 04
    Status Word Should Be    ${r}    6986

VERIFY Without A PIN File Answers 6A88
    [Tags]    ISO-ERR-007
    Select JPKI AP
    ${r}=    Send APDU    00 20 00 80
    Status Word Should Be    ${r}    6A88

A Raw VERIFY Carrying Data Is Refused Before It Is Sent
    [Documentation]    Robot logs keyword arguments, so PIN bytes never go through the raw keyword: it refuses
    ...    VERIFY and CHANGE REFERENCE DATA with data in one line and sends nothing (the bytes here are no PIN).
    [Tags]    HIL-GRD-001
    Select JPKI AP
    ${before}=    APDU Count
    Run Keyword And Expect Error    *Send APDU refuses VERIFY with data*    Send APDU    00 20 00 80 04 00 00 00 00
    Run Keyword And Expect Error    *refuses CHANGE REFERENCE DATA*    Send APDU    00 24 01 80 04 00 00 00 00
    ${after}=    APDU Count
    Should Be Equal As Integers    ${after}    ${before}
