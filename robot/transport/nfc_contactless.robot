*** Settings ***
Documentation       Contactless transport (JPKI-FACTS §7): a My Number card or phone behind an NFC reader driven
...                 by nfcpy, which runs ISO 14443-4 itself (ATQB, ATTRIB, chaining, WTX, field loss).
...                 The default device is the virtual card as a Type B card on nfcpy's UDP link; a lab names its
...                 reader instead, e.g. ``--variable DEVICE:nfc:usb``. Requirements that pull the card from
...                 the field, slow it down or lose frames need the virtual card and are skipped elsewhere.
Library             harness.keywords.JPKILibrary
Suite Setup         Open Contactless Device
Suite Teardown      Close Device
Test Setup          Begin Contactless Requirement
Test Teardown       Log APDU Trace
Test Tags           transport    contactless


*** Variables ***
${DEVICE}           virtual:card?via=nfc
${CHALLENGE}        contactless challenge 2026-11-24T10:00:00Z


*** Test Cases ***
ATQB Parameters Are Reported
    [Documentation]    JPKI-FACTS §7: max frame 256 bytes, FWI 10 or 13, 106/212/424 kbit/s, ISO 14443-4.
    [Tags]    TRN-NFC-001
    Get Contactless Parameters
    Contactless Parameters Should Be    type=B    iso14443_4=yes    fwi=10|13    bit_rates=106,212,424
    Max Frame Size Should Be    256

ATR Is Synthesised From The ATQB
    [Documentation]    ``3B 88 80 01`` + application data + protocol info + MBLI + TCK, as PC/SC readers report.
    [Tags]    TRN-NFC-002
    Contactless ATR Should Match ATQB

Frame Sizes Are Respected Both Ways
    [Documentation]    No frame longer than the card's FSC (ATQB) or the reader's FSD (ATTRIB).
    [Tags]    TRN-NFC-003
    Require Virtual Contactless Card
    Reset Link Statistics
    Verify PIN    auth
    Read Certificate    auth
    Frames Should Respect Frame Sizes

Certificate Read With Extended Le Uses Response Chaining
    [Documentation]    One READ BINARY with extended Le returns the 2 KB EF: far more than one frame carries.
    [Tags]    TRN-NFC-004
    Contactless Parameters Should Be    extended_apdu=yes
    Verify PIN    auth
    ${der}=    Read Certificate    auth
    Certificate Should Match Fixture    ${der}    auth
    Require Virtual Contactless Card
    Last Exchange Should Have Used Chaining    response

Long Command Uses Command Chaining
    [Documentation]    A 300-byte command data field crosses the 256-byte frame: the reader chains it and the
    ...                card answers the whole APDU (an unknown AID: 6A82).
    [Tags]    TRN-NFC-005
    ${aid}=    Evaluate    " ".join(["A0"] * 300)
    ${r}=    Send APDU    00 A4 04 0C 00 01 2C ${aid}
    Status Word Should Be    ${r}    6A82
    Require Virtual Contactless Card
    Last Exchange Should Have Used Chaining    command

Slow Signing Is Bridged With WTX
    [Documentation]    A signature slower than the frame waiting time arrives after S(WTX) and still verifies.
    [Tags]    TRN-NFC-006
    Require Virtual Contactless Card
    ${params}=    Get Contactless Parameters
    ${delay}=    Evaluate    int(float($params['fwt_ms']) * 1.5) + 100
    Delay Card Signatures    ${delay}
    Verify PIN    auth
    ${cert}=    Read Certificate    auth
    ${signature}=    Sign Data    auth    ${CHALLENGE}
    Last Exchange Should Have Used WTX
    Signature Should Verify    ${signature}    ${CHALLENGE}    ${cert}
    [Teardown]    Run Keywords    Delay Card Signatures    0    AND    Log APDU Trace

Lost Frames Are Recovered With R(NAK)
    [Documentation]    The reader re-asks with R(NAK) when the card's answer or its own block goes missing.
    [Tags]    TRN-NFC-007
    Require Virtual Contactless Card
    ${params}=    Get Contactless Parameters
    Skip If    $params['nak_retries'] == '0'
    ...    nfcpy (the harness's own reader stack) makes no R(NAK) retry when FWT reaches 1 s (FWI ${params}[fwi])
    Reset Link Statistics
    Inject Link Fault    lose_responses=1
    Select JPKI AP
    Inject Link Fault    lose_commands=1
    ${label}=    Read Token Label
    Should Start With    ${label}    JPKIAP
    Link Statistic Should Be At Least    naks_in    2

Card Leaving The Field Mid-APDU Is Reported
    [Documentation]    The card goes during an APDU: the reader reports the target lost, not a status word.
    [Tags]    TRN-NFC-008
    Require Virtual Contactless Card
    Select JPKI AP
    Pull Card During APDU    1
    Run Keyword And Expect Error    CardRemoved:*    Read Token Label
    [Teardown]    End Removal Requirement

Card Is Activated Again After Returning To The Field
    [Documentation]    Back in the field the card is discovered and activated anew and answers from a fresh state.
    [Tags]    TRN-NFC-009
    Require Virtual Contactless Card
    Verify PIN    auth
    Remove Card
    Run Keyword And Expect Error    CardRemoved:*    Select JPKI AP
    Insert Card
    Reconnect Card
    Contactless Parameters Should Be    type=B
    Contactless ATR Should Match ATQB
    ${label}=    Read Token Label
    Should Start With    ${label}    JPKIAP
    ${status}=    Sign Data Status    auth
    Should Be Equal    ${status}    6982    the auth PIN must not survive leaving the field

Deactivation Clears The Security State
    [Documentation]    S(DESELECT) and field off end the session: a verified PIN does not survive re-activation.
    [Tags]    TRN-NFC-010
    Verify PIN    auth
    Power Cycle Card
    ${status}=    Sign Data Status    auth
    Should Be Equal    ${status}    6982    the auth PIN must not survive a deactivation


*** Keywords ***
Open Contactless Device
    [Documentation]    Opens ``${DEVICE}`` and fails at once unless it is a contactless reader.
    Open Device    ${DEVICE}
    Get Contactless Parameters

End Removal Requirement
    [Documentation]    Brings a virtual card back into the field so the next requirement finds it there.
    Restore Card
    Log APDU Trace

Begin Contactless Requirement
    [Documentation]    Each requirement starts from a freshly activated card with an empty APDU trace.
    Start APDU Trace
    Power Cycle Card
