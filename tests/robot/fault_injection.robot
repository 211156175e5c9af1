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
    Arm Fault    remove_at_apdu=3
    Read Certificate    auth

Certificate Read Works On The Re-Inserted Card
    [Setup]    Insert Fresh Virtual Card
    ${der}=    Read Certificate    auth
    Certificate Should Match Fixture    ${der}    auth

Card Pulled During The Signature
    Verify PIN    auth
    Arm Fault    remove_at_apdu=3
    Sign Data    auth    challenge

Signature Works On The Re-Inserted Card
    [Setup]    Insert Fresh Virtual Card
    ${cert}=    Read Certificate    auth
    Verify PIN    auth
    ${signature}=    Sign Data    auth    challenge
    Signature Should Verify    ${signature}    challenge    ${cert}

Card Stalls Three Seconds Beyond The APDU Timeout
    Set APDU Timeout    1
    Arm Fault    stall_at_apdu=1    stall_seconds=4
    Select JPKI AP

Card Answers Again After The Stall
    [Setup]    Recover From Stall
    Select JPKI AP
    ${label}=    Read Token Label
    Should Be Equal    ${label}    JPKIAPICCTOKEN2

Reader Unplugged Mid-Run
    Unplug Virtual Reader
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
    Insert Fresh Virtual Card
