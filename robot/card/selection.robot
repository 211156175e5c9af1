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
