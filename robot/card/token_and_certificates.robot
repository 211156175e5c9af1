*** Settings ***
Documentation       Token information and certificates of the JPKI AP (JPKI-FACTS §2, §6).
Resource            ../resources/card.resource
Suite Setup         Open Card Under Test
Suite Teardown      Close Device
Test Setup          Begin Requirement
Test Teardown       End Requirement
Test Tags           card    certificates


*** Test Cases ***
Token Label Is JPKIAPICCTOKEN2
    [Tags]    JPKI-TOK-001
    ${label}=    Read Token Label
    Should Be Equal    ${label}    JPKIAPICCTOKEN2

Token Information Is Readable Without A PIN
    [Tags]    JPKI-TOK-002
    Select JPKI AP
    Select EF    0006
    ${r}=    Read Binary    0    32
    Status Word Should Be    ${r}    9000
    Response Data Length Should Be    ${r}    32

Auth Certificate Is Free And Matches The Issued One
    [Tags]    JPKI-CRT-001
    ${der}=    Read Certificate    auth
    Certificate Should Match Fixture    ${der}    auth

Auth CA Certificate Matches The Test Root
    [Tags]    JPKI-CRT-002
    ${der}=    Read Certificate    auth_ca
    Certificate Should Match Fixture    ${der}    auth_ca

Sign CA Certificate Matches The Test Root
    [Tags]    JPKI-CRT-003
    ${der}=    Read Certificate    sign_ca
    Certificate Should Match Fixture    ${der}    sign_ca

Sign Certificate Is Readable After The Sign Password
    [Tags]    JPKI-CRT-004    sends-pin
    Verify PIN    sign
    ${der}=    Read Certificate    sign
    Certificate Should Match Fixture    ${der}    sign
    Certificate Should Chain To Test Root    ${der}    sign

Auth Certificate Chains To The Test Auth Root
    [Tags]    JPKI-CRT-005
    ${der}=    Read Certificate    auth
    Certificate Should Chain To Test Root    ${der}    auth
    Certificate Key Should Be RSA 2048    ${der}

Auth Certificate Follows The JPKI Profile
    [Documentation]    Subject only C=JP and a 23-character CN; no personal attributes (JPKI-FACTS §6).
    [Tags]    JPKI-CRT-006
    ${der}=    Read Certificate    auth
    Auth Certificate Should Follow JPKI Profile    ${der}

Sign Certificate Carries The Holder's Attributes
    [Tags]    JPKI-CRT-007    sends-pin
    Verify PIN    sign
    ${der}=    Read Certificate    sign
    Sign Certificate Should Carry Holder    ${der}

Certificate Reads The Same With Short APDUs
    [Documentation]    A host behind a reader without extended APDUs reads in 256-byte chunks.
    [Tags]    JPKI-CRT-008
    ${short}=    Read Certificate With Short APDUs    auth
    ${long}=    Read Certificate    auth
    Should Be Equal    ${short}    ${long}

Four-Byte Header Gives The Certificate Length
    [Tags]    JPKI-CRT-009
    Select JPKI AP
    Select EF    000A
    ${r}=    Read Binary    0    4
    Status Word Should Be    ${r}    9000
    Response Data Length Should Be    ${r}    4
    ${header}=    Evaluate    $r.data.hex()
    Should Start With    ${header}    3082

Le Beyond The End Returns The Rest With 9000
    [Tags]    JPKI-CRT-010
    Select JPKI AP
    Select EF    0002
    ${r}=    Read Binary    1890    256
    Status Word Should Be    ${r}    9000
    Response Data Length Should Be    ${r}    10

Reading Past The End Is Refused With 6B00
    [Documentation]    UNCERTAIN in JPKI-FACTS §2 (one source); the virtual card follows it.
    [Tags]    JPKI-CRT-011    uncertain
    Select JPKI AP
    Select EF    0002
    ${r}=    Read Binary    1900    16
    Status Word Should Be    ${r}    6B00
