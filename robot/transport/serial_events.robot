*** Settings ***
Documentation       Serial reader modules: insert and remove notifications reach the host unasked; a card pulled
...                 during an APDU ends it with ``CardRemoved``; a card put back is not talked to before a new
...                 power-on; power-on without a card is ``NoCard``.
Resource            ../resources/serial.resource
Test Tags           transport    serial


*** Test Cases ***
A Removal Is Notified Without Polling
    [Tags]    SER-EVT-001
    [Template]    Removal Should Be Notified
    ${KIOSK_READER}
    ${STB_READER}
    ${LINE_READER}

An Insertion Is Notified And Waited For
    [Tags]    SER-EVT-002
    [Template]    Insertion Should Be Notified
    ${KIOSK_READER}
    ${STB_READER}
    ${LINE_READER}

A Card Pulled During An APDU Ends It With CardRemoved
    [Tags]    SER-EVT-003    fault
    [Template]    Card Pulled Mid APDU Should Be Reported
    ${KIOSK_READER}
    ${STB_READER}
    ${LINE_READER}

A Card Put Back Needs A New Power-On
    [Tags]    SER-EVT-004
    [Template]    Card Put Back Should Need Power On
    ${KIOSK_READER}
    ${STB_READER}
    ${LINE_READER}

Power-On Without A Card Is NoCard
    [Tags]    SER-EVT-005
    [Template]    Power On Without Card Should Fail
    ${KIOSK_READER}
    ${STB_READER}
    ${LINE_READER}


*** Keywords ***
Removal Should Be Notified
    [Documentation]    Taking the card out of ``${reader}`` is notified by the module, without a poll from the host.
    [Arguments]    ${reader}
    [Teardown]    Close Serial Reader
    Open Serial Reader    ${reader}
    Remove Card
    Card Event Should Be Notified    removed    timeout=1
    Serial Statistic Should Be    frames_sent    0

Insertion Should Be Notified
    [Documentation]    Removal and insertion are both notified; the card then powers on with an ATR.
    [Arguments]    ${reader}
    [Teardown]    Close Serial Reader
    Open Serial Reader    ${reader}
    Remove Card
    Card Event Should Be Notified    removed    timeout=1
    Insert Card    timeout=0
    Card Event Should Be Notified    inserted    timeout=1
    ${atr}=    Power Cycle Card
    Should Start With    ${atr}    3B

Card Pulled Mid APDU Should Be Reported
    [Documentation]    A card pulled during an APDU fails it with CardRemoved and leaves the state absent.
    [Arguments]    ${reader}
    [Teardown]    Close Serial Reader
    Open Serial Reader    ${reader}
    Pull Card During APDU    1
    Send APDU Expecting Error    ${SELECT_JPKI}    CardRemoved
    Card State Should Be    absent

Card Put Back Should Need Power On
    [Documentation]    A card put back answers nothing until it is powered on again.
    [Arguments]    ${reader}
    [Teardown]    Close Serial Reader
    Open Serial Reader    ${reader}
    Remove Card
    Insert Card    timeout=0
    Card Event Should Be Notified    inserted    timeout=1
    Send APDU Expecting Error    ${SELECT_JPKI}    CardRemoved
    Power Cycle Card
    ${sw}=    Send APDU Timed    ${SELECT_JPKI}
    Should Be Equal    ${sw}    9000

Power On Without Card Should Fail
    [Documentation]    Powering on an empty ``${reader}`` fails with NoCard.
    [Arguments]    ${reader}
    [Teardown]    Close Serial Reader
    Open Serial Reader    ${reader}
    Remove Card
    Run Keyword And Expect Error    NoCard: *    Power Cycle Card
