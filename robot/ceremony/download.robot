*** Settings ***
Documentation       A ceremony that succeeds, what the phone then is, and the binding rules: one live phone per
...                 card, a new registration revokes the old phone, revoking the card revokes the phone.
Resource            ../resources/ceremony.resource
Resource            ../resources/common.resource
Suite Setup         Open Ceremony Devices Under Test
Suite Teardown      Close Ceremony Devices Under Test
Test Setup          Begin Ceremony Requirement
Test Teardown       End Ceremony Requirement


*** Variables ***
${CHALLENGE}        relying-party challenge 2026-12-02T03:00:00Z


*** Test Cases ***
A Ceremony Provisions The Phone
    [Documentation]    Keys generated in the phone, application signed by the card's sign key, both certificates
    ...                issued, stored and readable, the phone's own PINs set, the binding recorded.
    [Tags]    CER-DL-001    contactless
    Phone Provisioning State Should Be    empty
    ${result}=    Run Phone Download Ceremony
    Ceremony Should Have Provisioned The Phone    ${result}

The Provisioned Phone Passes The Phone Applet's Core Checks    # robocop: off=LEN04,LEN06
    [Documentation]    The phone suite's core requirements on the phone the ceremony made: its token label, the auth
    ...                certificate behind the auth PIN, certificates in the JPKI profile chaining to the test CA, and
    ...                signatures by its own keys verifying under the issued certificates.
    [Tags]    CER-DL-002    contactless
    ${result}=    Run Phone Download Ceremony
    Ceremony Should Succeed    ${result}
    Use Ceremony Device As Device Under Test    phone
    ${label}=    Read Token Label
    Should Be Equal    ${label}    JPKIAPGPSETOKEN
    Power Cycle Card
    Select JPKI AP
    Select EF    000A
    ${r}=    Read Binary    0    4
    Status Word Should Be    ${r}    6982
    Verify PIN    auth
    ${der}=    Read Certificate    auth
    Auth Certificate Should Follow JPKI Profile    ${der}
    Certificate Should Chain To Test Root    ${der}    auth
    Certificate Should Differ From PKI File    ${der}    card-auth.der
    ${signature}=    Sign Data    auth    ${CHALLENGE}
    Signature Should Verify    ${signature}    ${CHALLENGE}    ${der}
    Verify PIN    sign
    ${sign_der}=    Read Certificate    sign
    Sign Certificate Should Carry Holder    ${sign_der}
    Phone Signature Should Verify Under Issued Certificate    ${result}    sign

A Second Phone Revokes The First
    [Documentation]    JPKI-FACTS §8: one phone at a time; the new registration revokes the old phone's
    ...                certificates, and the authority's OCSP says so within the run.
    [Tags]    CER-BIND-001
    ${first}=    Run Phone Download Ceremony    phone_id=phone-A
    Ceremony Should Succeed    ${first}
    Insert New Blank Phone
    ${second}=    Run Phone Download Ceremony    phone_id=phone-B
    Ceremony Should Have Provisioned The Phone    ${second}
    Issued Certificate Status Should Be    ${first}    auth    revoked
    Issued Certificate Status Should Be    ${first}    sign    revoked
    Live Phones Of Card Should Be    ${second}    1

Revoking The Card Revokes The Phone
    [Documentation]    Card lost, renewed or holder moved: the card's certificate is revoked and the phone bound to
    ...                it goes with it; a new ceremony with that card is refused.
    [Tags]    CER-BIND-002
    ${result}=    Run Phone Download Ceremony
    Ceremony Should Succeed    ${result}
    ${revoked}=    Revoke Card At Authority    holder_moved
    Length Should Be    ${revoked}[revoked_certificates]    2
    Card Certificate Status Should Be    revoked
    Issued Certificate Status Should Be    ${result}    auth    revoked
    Issued Certificate Status Should Be    ${result}    sign    revoked
    Live Phones Of Card Should Be    ${result}    0
    Insert New Blank Phone
    ${again}=    Run Phone Download Ceremony
    Ceremony Should End With    ${again}    refused    apply
    Should Contain    ${again.detail}    revoked
    Authority Records Should Be Consistent

Phone PINs Block Independently Of The Card's
    [Documentation]    The phone's passwords are its own (JPKI-FACTS §8): blocking the phone's auth PIN leaves the
    ...                card's counters and the phone's sign password untouched.
    [Tags]    CER-PIN-001    destructive
    ${result}=    Run Phone Download Ceremony
    Ceremony Should Succeed    ${result}
    Use Ceremony Device As Device Under Test    phone
    Require Expendable Card    blocking the phone's auth PIN
    FOR    ${expected}    IN    63C2    63C1    63C0
        ${status}=    Verify Wrong PIN    auth
        Status Should Be    ${status}    ${expected}
    END
    ${status}=    Verify PIN Status    auth
    Status Should Be    ${status}    6984
    ${sign_tries}=    Query PIN Tries    sign
    Should Be Equal As Integers    ${sign_tries}    5
    Use Ceremony Device As Device Under Test    card
    ${card_auth}=    Query PIN Tries    auth
    Should Be Equal As Integers    ${card_auth}    3
    ${card_sign}=    Query PIN Tries    sign
    Should Be Equal As Integers    ${card_sign}    5

No PIN Or Private Key Reaches The Trace Or The Authority
    [Documentation]    The card's sign password and the phone's new PINs travel only masked in the trace; the
    ...                authority's events, bindings and database file hold no PIN; the phone's private keys never
    ...                leave its secure element.
    [Tags]    CER-SEC-001
    ${result}=    Run Phone Download Ceremony
    Ceremony Should Succeed    ${result}
    No Secret Should Be In Trace Or Records

An Abandoned Ceremony Leaves Nothing Live
    [Documentation]    Issued, but the phone never came back: when the ceremony's time runs out the authority
    ...                cancels it and revokes what it issued, so no certificate stays live without a phone.
    [Tags]    CER-BIND-003
    Lose Phone Link During Next App Command    UPDATE BINARY
    ${result}=    Run Phone Download Ceremony
    Ceremony Should End With    ${result}    phone_lost    store
    Issued Certificate Status Should Be    ${result}    auth    good
    Move Authority Clock    3600
    Run Authority Housekeeping
    Issued Certificate Status Should Be    ${result}    auth    revoked
    Issued Certificate Status Should Be    ${result}    sign    revoked
    Live Phones Of Card Should Be    ${result}    0
    Authority Records Should Be Consistent
