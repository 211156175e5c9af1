*** Settings ***
Documentation       What a reader sees of the phone's JPKI applet: the same AID, its own token and passwords,
...                 the auth certificate behind the auth PIN, no text AP.
Resource            ../resources/phone.resource
Suite Setup         Open Phone Under Test
Suite Teardown      Close Device
Test Setup          Begin Requirement
Test Teardown       End Requirement
Test Tags           phone


*** Variables ***
${CHALLENGE}        phone challenge 2026-11-24T10:00:00Z


*** Test Cases ***
JPKI AP Is Selectable By AID
    [Tags]    JPKI-SEL-001
    ${r}=    Select Applet    jpki
    Status Word Should Be    ${r}    9000

Unknown AID Is Refused With 6A82
    [Tags]    JPKI-SEL-006
    ${r}=    Select Applet    A0 00 00 03 97 42 54 46 59
    Status Word Should Be    ${r}    6A82

Phone Has No Text AP
    [Tags]    PHN-SEL-001
    ${r}=    Select Applet    text
    Status Word Should Be    ${r}    6A82

Phone Has No Visual AP
    [Tags]    PHN-SEL-002
    ${r}=    Select Applet    visual
    Status Word Should Be    ${r}    6A82

Token Label Is JPKIAPGPSETOKEN
    [Tags]    PHN-TOK-001
    ${label}=    Read Token Label
    Should Be Equal    ${label}    JPKIAPGPSETOKEN

Auth Certificate Needs The Auth PIN
    [Documentation]    Unlike the card, where EF 000A is free (JPKI-FACTS §8).
    [Tags]    PHN-ACC-001
    Select JPKI AP
    Select EF    000A
    ${r}=    Read Binary    0    4
    Status Word Should Be    ${r}    6982

Auth Certificate Reads After The Auth PIN
    [Tags]    PHN-CRT-001
    Verify PIN    auth
    ${der}=    Read Certificate    auth
    Certificate Should Match Fixture    ${der}    auth
    Certificate Should Chain To Test Root    ${der}    auth

Auth Certificate Follows The JPKI Profile
    [Tags]    JPKI-CRT-006
    Verify PIN    auth
    ${der}=    Read Certificate    auth
    Auth Certificate Should Follow JPKI Profile    ${der}

Auth CA Certificate Matches The Test Root
    [Tags]    JPKI-CRT-002
    ${der}=    Read Certificate    auth_ca
    Certificate Should Match Fixture    ${der}    auth_ca

Sign CA Certificate Matches The Test Root
    [Tags]    JPKI-CRT-003
    ${der}=    Read Certificate    sign_ca
    Certificate Should Match Fixture    ${der}    sign_ca

Sign Certificate Needs The Sign Password
    [Tags]    JPKI-ACC-001
    Select JPKI AP
    Select EF    0001
    ${r}=    Read Binary    0    4
    Status Word Should Be    ${r}    6982

Sign Certificate Is Readable After The Sign Password
    [Tags]    JPKI-CRT-004
    Verify PIN    sign
    ${der}=    Read Certificate    sign
    Certificate Should Match Fixture    ${der}    sign
    Sign Certificate Should Carry Holder    ${der}

Phone Certificates Differ From The Card's
    [Documentation]    The phone holds its own key pair and certificates, issued at registration.
    [Tags]    PHN-CRT-002
    Verify PIN    auth
    ${der}=    Read Certificate    auth
    Certificate Should Differ From PKI File    ${der}    card-auth.der

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

Wrong Auth PIN Decrements And A Correct One Restores
    [Tags]    JPKI-PIN-006
    ${status}=    Verify Wrong PIN    auth
    Status Should Be    ${status}    63C2
    Verify PIN    auth
    ${tries}=    Query PIN Tries    auth
    Should Be Equal As Integers    ${tries}    3

Phone Passwords Are Separate From The Card's
    [Documentation]    The card's auth PIN is not the phone's (JPKI-FACTS §8); guarded like any wrong PIN.
    [Tags]    PHN-PIN-001
    ${status}=    Verify PIN Of Another Profile    auth    card
    Status Should Be    ${status}    63C2
    Verify PIN    auth

Auth PIN Blocks After Three Wrong Tries
    [Tags]    JPKI-PIN-008    destructive    blocks:auth
    [Setup]    Run Keywords    Begin Requirement    AND    Require Expendable Card    blocking the auth PIN
    FOR    ${expected}    IN    63C2    63C1    63C0
        ${status}=    Verify Wrong PIN    auth
        Status Should Be    ${status}    ${expected}
    END
    ${status}=    Verify PIN Status    auth
    Status Should Be    ${status}    6984
    [Teardown]    End Destructive Requirement

Auth Key Signs After The Auth PIN
    [Tags]    JPKI-SIG-001
    Verify PIN    auth
    ${cert}=    Read Certificate    auth
    ${signature}=    Sign Data    auth    ${CHALLENGE}
    Signature Should Verify    ${signature}    ${CHALLENGE}    ${cert}

Sign Key Signs After The Sign Password
    [Tags]    JPKI-SIG-002
    Verify PIN    sign
    ${cert}=    Read Certificate    sign
    ${signature}=    Sign Data    sign    ${CHALLENGE}
    Signature Should Verify    ${signature}    ${CHALLENGE}    ${cert}

Auth Key Without The PIN Is Refused With 6982
    [Tags]    JPKI-SIG-003
    ${status}=    Sign Data Status    auth
    Status Should Be    ${status}    6982

Sign Key Without The Password Is Refused With 6982
    [Tags]    JPKI-SIG-004
    ${status}=    Sign Data Status    sign
    Status Should Be    ${status}    6982

Auth PIN Can Be Changed
    [Tags]    JPKI-PIN-010    destructive
    [Setup]    Run Keywords    Begin Requirement    AND    Require Expendable Card    changing the auth PIN
    ${status}=    Change PIN To New Value    auth
    Status Should Be    ${status}    9000
    Power Cycle Card
    Verify PIN    auth
    Restore Original PIN    auth
    [Teardown]    End Destructive Requirement

Data That Is Not A DigestInfo Is Padded And Signed
    [Documentation]    JPKI-FACTS §10: the same JPKI AP signing as the card's: any 1-245 bytes, type-01 padding.
    [Tags]    JPKI-SIG-008
    Verify PIN    auth
    ${cert}=    Read Certificate    auth
    ${signature}=    Sign Raw Input    auth    01 02 03 04
    Raw Signature Should Recover    ${signature}    01 02 03 04    ${cert}

TLS 1.0 MD5 And SHA-1 Concatenation Is Signed
    [Tags]    JPKI-SIG-009
    Verify PIN    auth
    ${cert}=    Read Certificate    auth
    ${input}=    Set Variable    00 11 22 33 44 55 66 77 88 99 AA BB CC DD EE FF 01 23 45 67 89 AB CD EF FE DC BA 98 76 54 32 10 0F 1E 2D 3C
    ${signature}=    Sign Raw Input    auth    ${input}
    Raw Signature Should Recover    ${signature}    ${input}    ${cert}

Auth PIN Retry Query By Short Identifier
    [Tags]    JPKI-SFI-002
    ${status}=    Query PIN By Short Identifier    jpki    0018
    Status Should Be    ${status}    63C3

VERIFY By Short Identifier Unlocks The Auth Key
    [Tags]    JPKI-SFI-004
    Verify PIN By Short Identifier    auth
    ${cert}=    Read Certificate    auth
    ${signature}=    Sign Raw Input    auth    0A 0B 0C 0D
    Raw Signature Should Recover    ${signature}    0A 0B 0C 0D    ${cert}

Auth Certificate By Short Identifier Needs The Auth PIN
    [Documentation]    ``00 B0 8A``: the phone's EF 000A stays closed by short identifier too (JPKI-FACTS §8, §10).
    [Tags]    PHN-SFI-001
    ${r}=    Read Binary By Short Identifier    jpki    000A    4
    Status Word Should Be    ${r}    6982
    Verify PIN By Short Identifier    auth
    ${r}=    Read Binary By Short Identifier    jpki    000A    4
    Status Word Should Be    ${r}    9000
    Should Be Equal As Strings    ${r.data[:2].hex()}    3082

Token Information Reads By Short Identifier
    [Tags]    PHN-SFI-002
    ${r}=    Read Binary By Short Identifier    jpki    0006    32
    Status Word Should Be    ${r}    9000
    Should Start With    ${r.data.decode('ascii')}    JPKIAPGPSETOKEN
