*** Settings ***
Documentation       Reader transport through PC/SC (pcscd and the reader's driver): the ATR, short and extended
...                 APDUs, 61xx GET RESPONSE and 6Cxx handling, long runs of APDUs, card removal and
...                 reconnection. The default device is the virtual card behind pcscd + vpcd; a lab names its
...                 reader instead, e.g. ``--variable DEVICE:pcsc:ACS``. Removal requirements need a virtual
...                 slot and the 61xx/6Cxx ones a card answering like T=0; elsewhere they are skipped.
Resource            transport.resource
Suite Setup         Open Transport Device
Suite Teardown      Close Device
Test Setup          Begin Transport Requirement
Test Teardown       End Transport Requirement
Test Tags           transport    pcsc


*** Variables ***
${DEVICE}           virtual:card?via=pcsc
${CHALLENGE}        transport challenge 2026-11-24T10:00:00Z


*** Test Cases ***
ATR Is Read And Well Formed
    [Documentation]    The ATR parses, its TCK holds, and it offers T=1 (JPKI-FACTS §7, contact interface).
    [Tags]    TRN-ATR-001
    ${atr}=    Read ATR
    Should Not Be Empty    ${atr}
    ATR Should Be Well Formed
    ATR Should Offer Protocol    T=1

Reader Uses A Protocol The ATR Offers
    [Documentation]    The protocol negotiated at connection (T=0 or T=1; contactless shows T=1) is offered.
    [Tags]    TRN-ATR-002
    ${protocol}=    Active Protocol Should Be Offered By ATR
    Log    negotiated ${protocol}

Short APDUs Of Every Case Pass
    [Documentation]    Case 3 (SELECT), case 2 (READ BINARY Le=4), case 1 (VERIFY query), case 4 (SELECT with Le).
    [Tags]    TRN-APDU-001
    Select JPKI File    ${SELECT_AUTH_CERT}
    ${response}=    Send Raw APDU    00 B0 00 00 04
    Status Word Should Be    ${response}    9000
    Response Length Should Be    ${response}    4
    ${response}=    Send Raw APDU    00 A4 02 0C 02 00 18
    Status Word Should Be    ${response}    9000
    ${response}=    Send Raw APDU    00 20 00 80
    Should Be Equal As Integers    ${response.sw1}    0x63
    ${response}=    Send Raw APDU    00 A4 04 00 0A D3 92 F0 00 26 01 00 00 00 01 00
    Status Word Should Be    ${response}    9000

A 256-Byte Response Arrives Whole
    [Documentation]    Short Le=00 asks for 256 bytes; all of them arrive with 9000.
    [Tags]    TRN-APDU-002
    Select JPKI File    ${SELECT_AUTH_CERT}
    ${response}=    Send Raw APDU    00 B0 00 00 00
    Status Word Should Be    ${response}    9000
    Response Length Should Be    ${response}    256

Reader Carries Extended APDUs
    [Documentation]    The reader reports extended-length APDUs (JPKI-FACTS §7: the card supports them).
    [Tags]    TRN-EXT-001
    Reader Should Support Extended APDUs

Extended Le Reads A Certificate In One APDU
    [Documentation]    READ BINARY with extended Le 0000 returns the whole auth certificate EF at once.
    [Tags]    TRN-EXT-002
    Select JPKI File    ${SELECT_AUTH_CERT}
    ${response}=    Send Raw APDU    00 B0 00 00 00 00 00
    Status Word Should Be    ${response}    9000
    ${length}=    Response Should Hold Complete DER Object    ${response}
    Should Be True    ${length} > 256
    Last Exchange Should Have Gone Unchanged

Extended Lc Command Is Accepted
    [Documentation]    SELECT by AID with an extended Lc field reaches the card intact.
    [Tags]    TRN-EXT-003
    ${response}=    Send Raw APDU    00 A4 04 0C 00 00 0A D3 92 F0 00 26 01 00 00 00 01
    Status Word Should Be    ${response}    9000

Reader Collects 61xx Data With GET RESPONSE
    [Documentation]    A T=0 card answers an extended-Le READ BINARY with 61xx; the data comes by GET RESPONSE.
    [Tags]    TRN-GR-001
    [Setup]    Open T=0 Device
    Select JPKI File    ${SELECT_AUTH_CERT}
    ${response}=    Send Raw APDU    00 B0 00 00 00 00 00
    Status Word Should Be    ${response}    9000
    ${length}=    Response Should Hold Complete DER Object    ${response}
    ${count}=    Last Exchange Should Have Used GET RESPONSE    minimum=2
    Log    ${length}-byte certificate in ${count} GET RESPONSEs
    [Teardown]    Back To Transport Device

A Case 4 Signature Comes Back Through GET RESPONSE
    [Documentation]    Signing sends data and expects data: on a T=0 card the signature follows 6100.
    [Tags]    TRN-GR-002
    [Setup]    Open T=0 Device
    Verify PIN    auth
    ${signature}=    Sign Data    auth    ${CHALLENGE}
    Length Should Be    ${signature}    256
    Last Exchange Should Have Used GET RESPONSE
    ${certificate}=    Read Certificate    auth
    Signature Should Verify    ${signature}    ${CHALLENGE}    ${certificate}
    [Teardown]    Back To Transport Device

Without Harness Handling 61xx Reaches The Host
    [Documentation]    With GET RESPONSE switched off in the harness, neither pcscd nor the driver answers 61xx:
    ...                the host sees it and fetches the data itself.
    [Tags]    TRN-GR-003
    [Setup]    Open T=0 Device
    Set Reader Handling    get_response=off    resend_6c=off
    Select JPKI File    ${SELECT_AUTH_CERT}
    ${response}=    Send Raw APDU    00 B0 00 00 00 00 00
    Should Be Equal As Integers    ${response.sw1}    0x61
    Last Exchange Should Have Gone Unchanged
    ${response}=    Send Raw APDU    00 C0 00 00 00
    Response Length Should Be    ${response}    256
    Should Be Equal As Integers    ${response.sw1}    0x61
    [Teardown]    Back To Transport Device

Reader Re-Sends With The Exact Le After 6Cxx
    [Documentation]    Le=00 on an EF shorter than 256 bytes: a T=0 card answers 6Cxx, the command goes again
    ...                with Le=xx and the data arrives with 9000.
    [Tags]    TRN-6C-001
    [Setup]    Open T=0 Device
    Select JPKI File    ${SELECT_TOKEN_INFO}
    ${response}=    Send Raw APDU    00 B0 00 00 00
    Status Word Should Be    ${response}    9000
    ${le}=    Last Exchange Should Have Been Resent With Le
    Response Length Should Be    ${response}    ${le}
    [Teardown]    Back To Transport Device

Without Harness Handling 6Cxx Reaches The Host
    [Documentation]    With the re-send switched off, 6Cxx reaches the host unchanged.
    [Tags]    TRN-6C-002
    [Setup]    Open T=0 Device
    Set Reader Handling    get_response=on    resend_6c=off
    Select JPKI File    ${SELECT_TOKEN_INFO}
    ${response}=    Send Raw APDU    00 B0 00 00 00
    Should Be Equal As Integers    ${response.sw1}    0x6C
    Last Exchange Should Have Gone Unchanged
    [Teardown]    Back To Transport Device

Two Hundred APDUs Back To Back
    [Documentation]    200 SELECTs without pause all answer 9000; the median and worst times are logged.
    [Tags]    TRN-B2B-001
    ${summary}=    Send Raw APDUs Back To Back    ${SELECT_JPKI}    count=200
    Should Be Equal As Integers    ${summary}[count]    200

Card Pulled During An APDU Is Reported
    [Documentation]    The card leaves while an APDU is in flight: the reader reports the removal, no answer.
    [Tags]    TRN-RMV-001
    Pull Card During APDU    1
    Card Removal Should Be Reported

Card Removed Between APDUs Is Reported
    [Documentation]    After the reader saw the slot empty, the next APDU fails with a removal, not a hang.
    [Tags]    TRN-RMV-002
    Remove Card
    Card Removal Should Be Reported

Reader Reconnects After Re-Insertion
    [Documentation]    Remove, insert again, reconnect: the same ATR and a working card.
    [Tags]    TRN-RCN-001
    ${before}=    Get ATR
    Remove Card
    Insert Card
    ${after}=    Reconnect Card
    Should Be Equal    ${before}    ${after}
    ${response}=    Send Raw APDU    ${SELECT_JPKI}
    Status Word Should Be    ${response}    9000
