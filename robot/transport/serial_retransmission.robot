*** Settings ***
Documentation       Serial reader modules: bad frames are recovered by NAK and re-send (kiosk, line) or by re-sending
...                 the command with its sequence number (set-top box); a re-sent command is answered from the
...                 module's cache, never run twice; a frame still bad after the retries ends with a one-line
...                 ``ProtocolError`` that names the frame and the fault.
Resource            ../resources/serial.resource
Test Tags           transport    serial    fault


*** Test Cases ***
A Corrupted Response Checksum Is Recovered
    [Tags]    SER-RTX-001
    [Template]    Response Fault Should Be Recovered
    ${KIOSK_READER}    corrupt_responses
    ${STB_READER}      corrupt_responses
    ${LINE_READER}     corrupt_responses

Dropped Response Bytes Are Recovered
    [Tags]    SER-RTX-002
    [Template]    Response Fault Should Be Recovered
    ${KIOSK_READER}    truncate_responses
    ${STB_READER}      truncate_responses
    ${LINE_READER}     truncate_responses

A Corrupted Command Is Sent Again
    [Documentation]    The kiosk and line modules NAK the bad frame at once; the set-top box reader drops it and
    ...                the host sends it again after its timeout.
    [Tags]    SER-RTX-003
    [Template]    Command Fault Should Be Recovered
    ${KIOSK_READER}    corrupt_commands
    ${STB_READER}${FAST}    corrupt_commands
    ${LINE_READER}     corrupt_commands

Dropped Command Bytes Are Recovered
    [Tags]    SER-RTX-004
    [Template]    Command Fault Should Be Recovered
    ${KIOSK_READER}    truncate_commands
    ${STB_READER}${FAST}    truncate_commands
    ${LINE_READER}     truncate_commands

A Lost VERIFY Answer Costs One Try And Is Never Re-Sent
    [Documentation]    The answer to a wrong VERIFY is lost; a command carrying a PIN is never sent twice (a module
    ...                without sequence numbers, or one whose ACK was lost, would run it again), so the exchange
    ...                fails with a ProtocolError and the card counts the wrong PIN once.
    [Tags]    SER-RTX-005    destructive
    [Template]    Lost VERIFY Answer Should Cost One Try
    ${KIOSK_READER}${FAST}
    ${STB_READER}${FAST}
    ${LINE_READER}${FAST}

A Frame Still Bad After The Retries Ends With A ProtocolError Naming It
    [Tags]    SER-RTX-006
    [Template]    Persistent Bad Frames Should Raise ProtocolError
    ${KIOSK_READER}
    ${STB_READER}
    ${LINE_READER}


*** Keywords ***
Response Fault Should Be Recovered
    [Documentation]    With ACK/NAK the host NAKs the bad answer; without, it sends the command again.
    [Arguments]    ${reader}    ${fault}
    [Teardown]    Close Serial Reader
    Open Serial Reader    ${reader}
    ${facts}=    Get Serial Reader Facts
    Inject Link Fault    ${fault}=1
    ${sw}=    Send APDU Timed    ${SELECT_JPKI}
    Should Be Equal    ${sw}    9000
    Serial Statistic Should Be    garbled    1
    Serial Statistic Should Be    ${facts}[bad_response_recovery]    1
    Firmware Statistic Should Be    commands_run    1

Command Fault Should Be Recovered
    [Documentation]    With ACK/NAK the module NAKs the bad frame; without, the host notices the missing answer.
    [Arguments]    ${reader}    ${fault}
    [Teardown]    Close Serial Reader
    Open Serial Reader    ${reader}
    ${facts}=    Get Serial Reader Facts
    Inject Link Fault    ${fault}=1
    ${sw}=    Send APDU Timed    ${SELECT_JPKI}
    Should Be Equal    ${sw}    9000
    Serial Statistic Should Be    ${facts}[bad_command_symptom]    1
    Serial Statistic Should Be    retransmissions    1
    Firmware Statistic Should Be    commands_run    1

Lost VERIFY Answer Should Cost One Try
    [Documentation]    A wrong VERIFY whose answer is lost is replayed by the module, not run twice: one try is spent.
    [Arguments]    ${reader}
    [Teardown]    Close Serial Reader
    Open Serial Reader    ${reader}
    ${before}=    Query PIN Tries    auth
    Select PIN File    auth
    Reset Serial Statistics
    Inject Link Fault    lose_responses=1
    Run Keyword And Expect Error    ProtocolError: *never sent twice*    Send Wrong PIN    auth
    Serial Statistic Should Be    retransmissions    0
    Firmware Statistic Should Be    commands_run    1
    Firmware Statistic Should Be    replays    0
    Clear Faults
    ${after}=    Query PIN Tries    auth
    Should Be Equal As Integers    ${after}    ${before - 1}

Persistent Bad Frames Should Raise ProtocolError
    [Documentation]    Answers corrupted beyond the retries fail with ProtocolError; the next APDU works again.
    [Arguments]    ${reader}
    [Teardown]    Close Serial Reader
    Open Serial Reader    ${reader}
    ${facts}=    Get Serial Reader Facts
    Inject Link Fault    corrupt_responses=20
    Send APDU Expecting Error    ${SELECT_JPKI}    ProtocolError
    Last Error Should Mention    transmit    ${facts}[checksum_word]    retries
    Clear Faults
    ${sw}=    Send APDU Timed    ${SELECT_JPKI}
    Should Be Equal    ${sw}    9000
