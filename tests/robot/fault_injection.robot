*** Settings ***
Documentation       Test data for tests/test_fault_runs.py, not a conformance suite: each fault makes its test
...                 fail with a clear error, and the test after it must pass on the same device.
Library             harness.keywords.JPKILibrary
Suite Setup         Open Device    ${DEVICE}
Suite Teardown      Close Device
Test Teardown       Log APDU Trace


*** Variables ***
${DEVICE}       virtual:card


*** Test Cases ***
Card Pulled During The Certificate Read
    Pull Card During APDU    3
    Read Certificate    auth

Certificate Read Works On The Re-Inserted Card
    [Setup]    Insert Fresh Card
    ${der}=    Read Certificate    auth
    Certificate Should Match Fixture    ${der}    auth

Card Pulled During The Signature
    Verify PIN    auth
    Pull Card During APDU    3
    Sign Data    auth    challenge

Signature Works On The Re-Inserted Card
    [Setup]    Insert Fresh Card
    ${cert}=    Read Certificate    auth
    Verify PIN    auth
    ${signature}=    Sign Data    auth    challenge
    Signature Should Verify    ${signature}    challenge    ${cert}

Card Stalls Three Seconds Beyond The APDU Timeout
    Set APDU Timeout    1
    Delay Card Answer    4
    Select JPKI AP

Card Answers Again After The Stall
    [Setup]    Recover From Stall
    Select JPKI AP
    ${label}=    Read Token Label
    Should Be Equal    ${label}    JPKIAPICCTOKEN2

Reader Unplugged Mid-Run
    Unplug Reader
    Select JPKI AP

The Next Test Opens The Device Again
    [Setup]    Open Device    ${DEVICE}
    Select JPKI AP
    ${label}=    Read Token Label
    Should Be Equal    ${label}    JPKIAPICCTOKEN2


*** Keywords ***
Recover From Stall
    Set APDU Timeout    None
    Clear Faults
    Sleep    3.5s    the stalled APDU is still with the card
    Insert Fresh Card
