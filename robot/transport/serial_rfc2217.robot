*** Settings ***
Documentation       The kiosk module over RFC 2217 (a serial port server on 127.0.0.1, as ser2net serves a lab's
...                 module): pyserial's RFC 2217 client negotiates the protocol file's line settings, and framing,
...                 retransmission, timeouts and card events behave as on a local port.
Resource            ../resources/serial.resource
Suite Setup         Open Serial Reader    ${NETWORK_READER}
Suite Teardown      Close Device
Test Setup          Begin Network Requirement
Test Teardown       End Network Requirement
Test Tags           transport    serial    rfc2217


*** Variables ***
${NETWORK_READER}       virtual:card?via=kiosk&transport=rfc2217${FAST}


*** Test Cases ***
RFC 2217 Negotiates The Protocol File's Line Settings
    [Tags]    SER-NET-001
    Port Server Line Settings Should Be    baudrate=38400    bytesize=8    parity=N    stopbits=1
    Serial Protocol Should Be    kiosk

A Certificate Reads Whole Over RFC 2217
    [Tags]    SER-NET-002
    ${der}=    Read Certificate    auth
    Certificate Should Match Fixture    ${der}    auth
    Serial Statistic Should Be    retransmissions    0

A Corrupted Checksum Is Recovered Over RFC 2217
    [Tags]    SER-NET-003    fault
    Inject Link Fault    corrupt_responses=1
    ${sw}=    Send APDU Timed    ${SELECT_JPKI}
    Should Be Equal    ${sw}    9000
    Serial Statistic Should Be    naks_sent    1

Dropped Bytes Are Recovered Over RFC 2217
    [Tags]    SER-NET-004    fault
    Inject Link Fault    truncate_responses=1
    ${sw}=    Send APDU Timed    ${SELECT_JPKI}
    Should Be Equal    ${sw}    9000
    Serial Statistic Should Be    garbled    1

A Stalled Module Times Out Over RFC 2217 And The Link Recovers
    [Tags]    SER-NET-005    fault
    Delay Responses Beyond The Timeouts
    Send APDU Expecting Error    ${SELECT_JPKI}    DeviceTimeout
    Wait For Delayed Responses    # the late answers must be skipped as stale
    ${sw}=    Send APDU Timed    ${SELECT_JPKI}
    Should Be Equal    ${sw}    9000

A Card Pulled Over RFC 2217 Is Reported
    [Tags]    SER-NET-006    fault
    Pull Card During APDU    1
    Send APDU Expecting Error    ${SELECT_JPKI}    CardRemoved
    Card State Should Be    absent


*** Keywords ***
Begin Network Requirement
    [Documentation]    Each requirement starts with an empty APDU trace and fresh serial statistics.
    Start APDU Trace
    Reset Serial Statistics

End Network Requirement
    [Documentation]    Logs the requirement's APDUs and puts the serial reader back as the suite opened it.
    Log APDU Trace
    Restore Card
