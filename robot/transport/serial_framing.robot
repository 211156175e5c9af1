*** Settings ***
Documentation       Serial reader modules: framing and commands as their protocol files define them
...                 (``fixtures/protocols/``): power on, status, APDUs, line settings, APDU size limits.
Resource            ../resources/serial.resource
Test Tags           transport    serial


*** Test Cases ***
Power On Returns The Card's ATR
    [Tags]    SER-FRM-001
    [Template]    Power On Should Return The Card's ATR
    ${KIOSK_READER}
    ${STB_READER}
    ${LINE_READER}

Line Settings Come From The Protocol File
    [Tags]    SER-FRM-002
    [Template]    Line Settings Should Follow The Protocol File
    ${KIOSK_READER}
    ${STB_READER}
    ${LINE_READER}

An APDU Goes Through In One Frame Each Way
    [Tags]    SER-FRM-003
    [Template]    APDU Should Take One Frame Each Way
    ${KIOSK_READER}
    ${STB_READER}
    ${LINE_READER}

A Certificate Reads Whole Within The Module's APDU Limits
    [Documentation]    The kiosk and line modules pass extended APDUs (one READ BINARY: 3 APDUs in all); the set-top
    ...                box reader passes short APDUs only, so the host reads in 256-byte chunks (7 APDUs).
    [Tags]    SER-FRM-004
    [Template]    Certificate Should Read Within Reader Limits
    ${KIOSK_READER}
    ${STB_READER}
    ${LINE_READER}

The Card State Is Reported Absent, Present And Powered
    [Tags]    SER-FRM-005
    [Template]    Card State Should Follow The Card
    ${KIOSK_READER}
    ${STB_READER}
    ${LINE_READER}


*** Keywords ***
Power On Should Return The Card's ATR
    [Documentation]    The power-on on ``${reader}`` gives an ATR starting 3B; the module says the card is powered.
    [Arguments]    ${reader}
    [Teardown]    Close Serial Reader
    Open Serial Reader    ${reader}
    ${atr}=    Get ATR
    Should Match Regexp    ${atr}    ^3B( [0-9A-F]{2})+$
    Card State Should Be    powered

Line Settings Should Follow The Protocol File
    [Documentation]    Opens ``${reader}``: baud rate, parity and stop bits of the port are the protocol file's.
    [Arguments]    ${reader}
    [Teardown]    Close Serial Reader
    Open Serial Reader    ${reader}
    Get Serial Reader Facts
    Port Line Settings Should Match Protocol File

APDU Should Take One Frame Each Way
    [Documentation]    One SELECT on ``${reader}`` is one frame out and one back, with no retransmission.
    [Arguments]    ${reader}
    [Teardown]    Close Serial Reader
    Open Serial Reader    ${reader}
    ${sw}=    Send APDU Timed    ${SELECT_JPKI}
    Should Be Equal    ${sw}    9000
    Serial Statistic Should Be    frames_sent    1
    Serial Statistic Should Be    frames_received    1
    Serial Statistic Should Be    retransmissions    0
    Firmware Statistic Should Be    commands_run    1

Certificate Should Read Within Reader Limits
    [Documentation]    Reads the auth certificate on ``${reader}`` in as many APDUs as its maximum response allows.
    [Arguments]    ${reader}
    [Teardown]    Close Serial Reader
    Open Serial Reader    ${reader}
    ${before}=    APDU Count
    ${der}=    Read Certificate    auth
    Certificate Should Match Fixture    ${der}    auth
    ${after}=    APDU Count
    ${expected}=    Certificate Read APDUs For Reader    ${der}
    Should Be Equal As Integers    ${after - ${before}}    ${expected}

Card State Should Follow The Card
    [Documentation]    The module's card state on ``${reader}`` follows power cycles, removal and insertion.
    [Arguments]    ${reader}
    [Teardown]    Close Serial Reader
    Open Serial Reader    ${reader}
    Card State Should Be    powered
    Power Cycle Card
    Card State Should Be    powered
    Remove Card
    Card State Should Be    absent
    Insert Card    timeout=0
    Card State Should Be    present
