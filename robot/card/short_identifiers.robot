*** Settings ***
Documentation       Short EF identifiers: READ BINARY ``00 B0 (80|SFI)`` and VERIFY ``00 20 00 (80|SFI)`` without
...                 a SELECT EF (JPKI-FACTS §10); the SFI is the FID's low 5 bits. Some clients use only these forms.
Resource            ../resources/card.resource
Suite Setup         Open Card Under Test
Suite Teardown      Close Device
Test Setup          Begin Requirement
Test Teardown       End Requirement
Test Tags           card    short-identifiers


*** Test Cases ***
Token Information Reads By Short Identifier
    [Tags]    JPKI-SFI-001
    ${r}=    Read Binary By Short Identifier    jpki    0006    32
    Status Word Should Be    ${r}    9000
    Should Start With    ${r.data.decode('ascii')}    JPKIAPICCTOKEN2

Auth PIN Retry Query By Short Identifier
    [Tags]    JPKI-SFI-002
    ${status}=    Query PIN By Short Identifier    jpki    0018
    Status Should Be    ${status}    63C3

Sign Password Retry Query By Short Identifier
    [Tags]    JPKI-SFI-003
    ${status}=    Query PIN By Short Identifier    jpki    001B
    Status Should Be    ${status}    63C5

VERIFY By Short Identifier Unlocks The Auth Key
    [Tags]    JPKI-SFI-004    sends-pin
    ${cert}=    Read Certificate    auth
    Verify PIN By Short Identifier    auth
    ${signature}=    Sign Raw Input    auth    0A 0B 0C 0D
    Raw Signature Should Recover    ${signature}    0A 0B 0C 0D    ${cert}

Sign Certificate By Short Identifier Needs The Sign Password
    [Tags]    JPKI-SFI-005    sends-pin
    ${r}=    Read Binary By Short Identifier    jpki    0001    4
    Status Word Should Be    ${r}    6982
    Verify PIN By Short Identifier    sign
    ${r}=    Read Binary By Short Identifier    jpki    0001    4
    Status Word Should Be    ${r}    9000
    Should Be Equal As Strings    ${r.data[:2].hex()}    3082

Security State Survives SELECT EF And READ BINARY
    [Documentation]    JPKI-FACTS §10 CONFIRMED: a verified password stays verified inside the AP.
    [Tags]    JPKI-SFI-006    sends-pin
    Verify PIN    sign
    Select EF    0002
    ${r}=    Read Binary    0    4
    Status Word Should Be    ${r}    9000
    Select EF    0001
    ${r}=    Read Binary    0    4
    Status Word Should Be    ${r}    9000

Text PIN Retry Query By Short Identifier
    [Tags]    TXT-SFI-001
    ${status}=    Query PIN By Short Identifier    text    0011
    Status Should Be    ${status}    63C3

Text AP Information Reads By Short Identifier
    [Tags]    TXT-SFI-002
    ${r}=    Read Binary By Short Identifier    text    0005    256
    Status Word Should Be    ${r}    9000
    Response Data Length Should Be    ${r}    256

VERIFY By Short Identifier Opens The My Number
    [Tags]    TXT-SFI-003    sends-pin
    Verify PIN By Short Identifier    text
    ${status}=    Read Text File Status    my_number
    Status Should Be    ${status}    9000
