*** Settings ***
Documentation       Serial reader modules: a slow card is waited for within the protocol's APDU timeout; a lost
...                 answer is recovered by sending the command again; a module silent beyond timeout × retries
...                 ends with a one-line ``DeviceTimeout``, and the link recovers afterwards.
Resource            ../resources/serial.resource
Test Tags           transport    serial    fault


*** Test Cases ***
A Slow Card Within The APDU Timeout Is Waited For
    [Tags]    SER-TMO-001
    [Template]    Slow Card Should Be Waited For
    ${KIOSK_READER}
    ${STB_READER}
    ${LINE_READER}

A Lost Answer Is Recovered By Sending The Command Again
    [Tags]    SER-TMO-002
    [Template]    Lost Answer Should Be Recovered
    ${KIOSK_READER}${FAST}
    ${STB_READER}${FAST}
    ${LINE_READER}${FAST}

A Stalled Module Ends With DeviceTimeout And The Link Recovers
    [Tags]    SER-TMO-003
    [Template]    Stalled Module Should Time Out
    ${KIOSK_READER}${FAST}
    ${STB_READER}${FAST}
    ${LINE_READER}${FAST}


*** Keywords ***
Slow Card Should Be Waited For
    [Documentation]    A card slower than usual (0.4 s) is waited for on ``${reader}``, without a retransmission.
    [Arguments]    ${reader}
    [Teardown]    Close Serial Reader
    Open Serial Reader    ${reader}
    Delay Card Answer    0.4
    ${sw}=    Send APDU Timed    ${SELECT_JPKI}
    Should Be Equal    ${sw}    9000
    Last Exchange Should Have Taken    at_least=0.4    at_most=2.5
    Serial Statistic Should Be    retransmissions    0

Lost Answer Should Be Recovered
    [Documentation]    A lost answer is recovered after the APDU timeout by one retransmission the module replays.
    [Arguments]    ${reader}
    [Teardown]    Close Serial Reader
    Open Serial Reader    ${reader}
    ${facts}=    Get Serial Reader Facts
    Inject Link Fault    lose_responses=1
    ${sw}=    Send APDU Timed    ${SELECT_JPKI}
    Should Be Equal    ${sw}    9000
    ${limit}=    Evaluate    $facts['timing.apdu_timeout'] * 3 + 1
    Last Exchange Should Have Taken    at_least=${facts}[timing.apdu_timeout]    at_most=${limit}
    Serial Statistic Should Be    retransmissions    1
    Firmware Statistic Should Be    replays    1
    Firmware Statistic Should Be    commands_run    1

Stalled Module Should Time Out
    [Documentation]    A module stalled beyond the timeouts fails with DeviceTimeout; its late answers are skipped.
    [Arguments]    ${reader}
    [Teardown]    Close Serial Reader
    Open Serial Reader    ${reader}
    ${facts}=    Get Serial Reader Facts
    ${stall}=    Delay Responses Beyond The Timeouts
    Send APDU Expecting Error    ${SELECT_JPKI}    DeviceTimeout
    Last Exchange Should Have Taken    at_least=${facts}[timing.apdu_timeout]    at_most=${stall}
    Last Error Should Mention    transmit    retries
    Wait For Delayed Responses    # the module then answers late: those answers must be skipped as stale
    ${sw}=    Send APDU Timed    ${SELECT_JPKI}
    Should Be Equal    ${sw}    9000
