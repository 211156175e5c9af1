*** Settings ***
Documentation       Signing with the auth and sign keys (JPKI-FACTS §4).
Resource            ../resources/card.resource
Suite Setup         Open Card Under Test
Suite Teardown      Close Device
Test Setup          Begin Requirement
Test Teardown       End Requirement
Test Tags           card    signing


*** Variables ***
${CHALLENGE}        relying-party challenge 2026-11-24T10:00:00Z


*** Test Cases ***
Auth Key Signs After The Auth PIN
    [Tags]    JPKI-SIG-001
    ${cert}=    Read Certificate    auth
    Verify PIN    auth
    ${signature}=    Sign Data    auth    ${CHALLENGE}
    Length Should Be    ${signature}    256
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

Auth PIN Does Not Unlock The Sign Key
    [Tags]    JPKI-SIG-005
    Verify PIN    auth
    ${status}=    Sign Data Status    sign
    Status Should Be    ${status}    6982

SHA-1 DigestInfo Is Accepted
    [Tags]    JPKI-SIG-006
    ${cert}=    Read Certificate    auth
    Verify PIN    auth
    ${signature}=    Sign Data    auth    ${CHALLENGE}    algorithm=sha1
    Signature Should Verify    ${signature}    ${CHALLENGE}    ${cert}    algorithm=sha1

Auth Signature Does Not Verify Under The Sign Certificate
    [Tags]    JPKI-SIG-007
    Verify PIN    sign
    ${sign_cert}=    Read Certificate    sign
    Verify PIN    auth
    ${signature}=    Sign Data    auth    ${CHALLENGE}
    Signature Should Not Verify    ${signature}    ${CHALLENGE}    ${sign_cert}

Data That Is Not A DigestInfo Is Padded And Signed
    [Documentation]    JPKI-FACTS §10: the card pads any 1-245 bytes with PKCS#1 v1.5 type 01 (OpenSC's
    ...                CKM_RSA_PKCS relies on it); a DigestInfo is only one such input.
    [Tags]    JPKI-SIG-008
    ${cert}=    Read Certificate    auth
    Verify PIN    auth
    ${signature}=    Sign Raw Input    auth    01 02 03 04
    Raw Signature Should Recover    ${signature}    01 02 03 04    ${cert}

TLS 1.0 MD5 And SHA-1 Concatenation Is Signed
    [Documentation]    36 bytes, no DigestInfo: what a TLS 1.0/1.1 client authentication asks of the key.
    [Tags]    JPKI-SIG-009
    ${cert}=    Read Certificate    auth
    Verify PIN    auth
    ${input}=    Set Variable    00 11 22 33 44 55 66 77 88 99 AA BB CC DD EE FF 01 23 45 67 89 AB CD EF FE DC BA 98 76 54 32 10 0F 1E 2D 3C
    ${signature}=    Sign Raw Input    auth    ${input}
    Raw Signature Should Recover    ${signature}    ${input}    ${cert}

MD5 DigestInfo Is Signed With The Sign Key
    [Documentation]    A DigestInfo outside SHA-1/SHA-2 (pkcs11-tool --test uses MD5 and RIPEMD-160).
    [Tags]    JPKI-SIG-010
    Verify PIN    sign
    ${cert}=    Read Certificate    sign
    ${input}=    Set Variable    30 20 30 0C 06 08 2A 86 48 86 F7 0D 02 05 05 00 04 10 00 01 02 03 04 05 06 07 08 09 0A 0B 0C 0D 0E 0F
    ${signature}=    Sign Raw Input    sign    ${input}
    Raw Signature Should Recover    ${signature}    ${input}    ${cert}

Input Longer Than The Padding Allows Is Refused With 6A80
    [Documentation]    246 bytes leave no room for the 11 bytes of PKCS#1 type-01 padding in 256.
    [Tags]    JPKI-SIG-011
    Verify PIN    auth
    ${input}=    Evaluate    " ".join(["AB"] * 246)
    ${status}=    Sign Raw Data Field    auth    ${input}
    Status Should Be    ${status}    6A80

Signing Names The Key By Short Identifier
    [Documentation]    JPKI-FACTS §10 (single source): P2 = 80|SFI names the key EF; 97 is the auth key 0017.
    [Tags]    JPKI-SIG-012    uncertain
    ${cert}=    Read Certificate    auth
    Verify PIN    auth
    ${r}=    Send APDU    80 2A 00 97 04 0A 0B 0C 0D 00
    Status Word Should Be    ${r}    9000
    Response Data Length Should Be    ${r}    256
