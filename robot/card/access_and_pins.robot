*** Settings ***
Documentation       Free and PIN-protected files, retry counters, blocking and PIN change (JPKI-FACTS §2, §3).
Resource            ../resources/card.resource
Suite Setup         Open Card Under Test
Suite Teardown      Close Device
Test Setup          Begin Requirement
Test Teardown       End Requirement
Test Tags           card    pins


*** Test Cases ***
Sign Certificate Needs The Sign Password
    [Tags]    JPKI-ACC-001
    Select JPKI AP
    Select EF    0001
    ${r}=    Read Binary    0    4
    Status Word Should Be    ${r}    6982

Auth PIN Does Not Open The Sign Certificate
    [Tags]    JPKI-ACC-002
    Verify PIN    auth
    Select EF    0001
    ${r}=    Read Binary    0    4
    Status Word Should Be    ${r}    6982

Security State Is Lost On Power Cycle
    [Tags]    JPKI-ACC-003
    Verify PIN    sign
    Power Cycle Card
    Select JPKI AP
    Select EF    0001
    ${r}=    Read Binary    0    4
    Status Word Should Be    ${r}    6982

Key Files Cannot Be Read
    [Tags]    JPKI-ACC-004
    Select JPKI AP
    Select EF    0017
    ${r}=    Read Binary    0    4
    Status Word Should Be    ${r}    6981

Auth PIN Retry Query Answers 63C3
    [Tags]    JPKI-PIN-001
    ${status}=    Query PIN Status    auth
    Status Should Be    ${status}    63C3

Sign Password Retry Query Answers 63C5
    [Tags]    JPKI-PIN-002
    ${status}=    Query PIN Status    sign
    Status Should Be    ${status}    63C5

Retry Query Answers 63Cx Even After A Successful VERIFY
    [Tags]    JPKI-PIN-003
    Verify PIN    auth
    ${status}=    Query PIN Status    auth    select=False
    Status Should Be    ${status}    63C3

Correct Auth PIN Is Accepted
    [Tags]    JPKI-PIN-004
    ${status}=    Verify PIN Status    auth
    Status Should Be    ${status}    9000

Correct Sign Password Is Accepted
    [Tags]    JPKI-PIN-005
    ${status}=    Verify PIN Status    sign
    Status Should Be    ${status}    9000

Wrong Auth PIN Decrements And A Correct One Restores
    [Tags]    JPKI-PIN-006
    ${status}=    Verify Wrong PIN    auth
    Status Should Be    ${status}    63C2
    ${tries}=    Query PIN Tries    auth
    Should Be Equal As Integers    ${tries}    2
    Verify PIN    auth
    ${tries}=    Query PIN Tries    auth
    Should Be Equal As Integers    ${tries}    3

Wrong Sign Password Decrements And A Correct One Restores
    [Tags]    JPKI-PIN-007
    ${status}=    Verify Wrong PIN    sign
    Status Should Be    ${status}    63C4
    Verify PIN    sign
    ${tries}=    Query PIN Tries    sign
    Should Be Equal As Integers    ${tries}    5

Auth PIN Blocks After Three Wrong Tries For Good
    [Documentation]    63C2, 63C1, then 63C0; afterwards even the right PIN gets 6984, a query 63C0,
    ...    and a power cycle changes nothing. Destructive: expendable cards only.
    [Tags]    JPKI-PIN-008    destructive    blocks:auth
    [Setup]    Run Keywords    Begin Requirement    AND    Require Expendable Card    blocking the auth PIN
    ${status}=    Verify Wrong PIN    auth
    Status Should Be    ${status}    63C2
    ${status}=    Verify Wrong PIN    auth
    Status Should Be    ${status}    63C1
    ${status}=    Verify Wrong PIN    auth
    Status Should Be    ${status}    63C0
    ${status}=    Verify PIN Status    auth
    Status Should Be    ${status}    6984
    ${status}=    Query PIN Status    auth
    Status Should Be    ${status}    63C0
    Power Cycle Card
    ${status}=    Verify PIN Status    auth
    Status Should Be    ${status}    6984
    ${status}=    Sign Data Status    auth
    Status Should Be    ${status}    6982
    [Teardown]    End Destructive Requirement

Sign Password Blocks After Five Wrong Tries
    [Tags]    JPKI-PIN-009    destructive    blocks:sign
    [Setup]    Run Keywords    Begin Requirement    AND    Require Expendable Card    blocking the sign password
    FOR    ${expected}    IN    63C4    63C3    63C2    63C1    63C0
        ${status}=    Verify Wrong PIN    sign
        Status Should Be    ${status}    ${expected}
    END
    ${status}=    Verify PIN Status    sign
    Status Should Be    ${status}    6984
    [Teardown]    End Destructive Requirement

Auth PIN Can Be Changed
    [Documentation]    VERIFY the old PIN, CHANGE REFERENCE DATA, then only the new one works.
    [Tags]    JPKI-PIN-010    destructive
    [Setup]    Run Keywords    Begin Requirement    AND    Require Expendable Card    changing the auth PIN
    ${status}=    Change PIN To New Value    auth
    Status Should Be    ${status}    9000
    Power Cycle Card
    Verify PIN    auth
    Restore Original PIN    auth
    [Teardown]    End Destructive Requirement

Sign Password Can Be Changed
    [Tags]    JPKI-PIN-011    destructive
    [Setup]    Run Keywords    Begin Requirement    AND    Require Expendable Card    changing the sign password
    ${status}=    Change PIN To New Value    sign
    Status Should Be    ${status}    9000
    Power Cycle Card
    Verify PIN    sign
    Restore Original PIN    sign
    [Teardown]    End Destructive Requirement

PIN Change Without VERIFY Is Refused With 6982
    [Documentation]    Sends CHANGE REFERENCE DATA: should a card take it, its PIN is changed. Destructive.
    [Tags]    JPKI-PIN-012    destructive
    [Setup]    Run Keywords    Begin Requirement    AND    Require Expendable Card    sending CHANGE REFERENCE DATA
    ${status}=    Change PIN Without Verify    auth
    Status Should Be    ${status}    6982
    [Teardown]    End Destructive Requirement

Malformed New PIN Is Refused With 6A80
    [Documentation]    The auth PIN is 4 digits, the sign password 6-16 of A-Z0-9 (JPKI-FACTS §3). Sends
    ...    CHANGE REFERENCE DATA: a card that takes the value keeps a PIN the harness does not know. Destructive.
    [Tags]    JPKI-PIN-013    uncertain    destructive
    [Setup]    Run Keywords    Begin Requirement    AND    Require Expendable Card    sending CHANGE REFERENCE DATA
    ${status}=    Change PIN To Malformed Value    auth
    Status Should Be    ${status}    6A80
    [Teardown]    End Destructive Requirement
