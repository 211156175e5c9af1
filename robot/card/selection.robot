*** Settings ***
Documentation       SELECT by AID and by FID (JPKI-FACTS §1).
Resource            ../resources/card.resource
Suite Setup         Open Card Under Test
Suite Teardown      Close Device
Test Setup          Begin Requirement
Test Teardown       End Requirement
Test Tags           card    selection


*** Test Cases ***
JPKI AP Is Selectable By AID
    [Tags]    JPKI-SEL-001
    ${r}=    Select Applet    jpki
    Status Word Should Be    ${r}    9000
    Response Data Length Should Be    ${r}    0

Text AP Is Selectable By AID
    [Tags]    JPKI-SEL-002
    ${r}=    Select Applet    text
    Status Word Should Be    ${r}    9000

Visual AP Is Selectable By AID
    [Tags]    JPKI-SEL-003
    ${r}=    Select Applet    visual
    Status Word Should Be    ${r}    9000

Juki AP Is Selectable By AID
    [Tags]    JPKI-SEL-004
    ${r}=    Select Applet    juki
    Status Word Should Be    ${r}    9000

Common AP Is Selectable By AID
    [Tags]    JPKI-SEL-005
    ${r}=    Select Applet    common
    Status Word Should Be    ${r}    9000

Unknown AID Is Refused With 6A82
    [Documentation]    A card that accepted every AID would be claimed by the wrong OpenSC driver.
    [Tags]    JPKI-SEL-006
    ${r}=    Select Applet    A0 00 00 03 97 42 54 46 59
    Status Word Should Be    ${r}    6A82

Absent EF Is Refused With 6A82
    [Tags]    JPKI-SEL-007
    Select JPKI AP
    ${r}=    Select EF    0099
    Status Word Should Be    ${r}    6A82

SELECT With P2 00 Is Accepted
    [Tags]    JPKI-SEL-008
    ${r}=    Select Applet    jpki    p2=00
    Status Word Should Be    ${r}    9000

Every JPKI AP File Is Selectable
    [Documentation]    All FIDs of JPKI-FACTS §2.
    [Tags]    JPKI-SEL-009
    Select JPKI AP
    FOR    ${fid}    IN    0001    0002    0006    000A    000B    0017    0018    001A    001B
        ${r}=    Select EF    ${fid}
        Status Word Should Be    ${r}    9000
    END

EF 0008 Flags Both Certificates
    [Documentation]    JPKI-FACTS §10: a free 3-byte EF, ``8F 8F 00`` on a card holding both certificates.
    [Tags]    JPKI-SEL-010
    Select JPKI AP
    Select EF    0008
    ${r}=    Read Binary    0    3
    Status Word Should Be    ${r}    9000
    Should Be Equal As Strings    ${r.data.hex()}    8f8f00

EFs 0009 And 0016 Exist
    [Tags]    JPKI-SEL-011
    Applet Files Should Exist    jpki    0009    0016

MF Selection Inside An AP Changes Nothing
    [Documentation]    JPKI-FACTS §10 (single source): ``00 A4 00 00`` answers 9000 while an AP is selected.
    [Tags]    JPKI-SEL-012    uncertain
    Select JPKI AP
    ${r}=    Send APDU    00 A4 00 0C 02 3F 00
    Status Word Should Be    ${r}    9000
    ${r}=    Read Binary By Short Identifier    jpki    0008    3
    Status Word Should Be    ${r}    9000
