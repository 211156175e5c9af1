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

Data That Is Not A DigestInfo Is Refused
    [Tags]    JPKI-SIG-008    uncertain
    Verify PIN    auth
    ${status}=    Sign Raw Data Field    auth    01 02 03 04
    Status Should Be    ${status}    6A80
