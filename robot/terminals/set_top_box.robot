*** Settings ***
Documentation       CATV set-top box: login with the card's auth certificate linked to a platform ID, facility
...                 booking, health records and the elderly-watch (見守り) check-in, with the TV remote as keypad.
Resource            ../resources/terminal.resource
Suite Setup         Open Terminal Under Test
Suite Teardown      Close Terminal Under Test
Test Setup          Begin Terminal Requirement
Test Teardown       End Terminal Requirement
Test Tags           terminal    stb


*** Variables ***
${TERMINAL}         virtual:card?via=stb
${KIND}             stb


*** Test Cases ***
Login Links The Auth Certificate To A Platform ID
    [Documentation]    The card signs the platform's challenge; the platform checks chain, OCSP and CRL and
    ...                links the certificate's CN to a platform ID.
    [Tags]    STB-LOGIN-001
    ${result}=    Log In On Terminal
    Flow Should Succeed    ${result}
    Platform ID Should Be Linked To Card
    OCSP Should Have Answered    good
    Audit Log Should Contain    event=login    outcome=ok    service=portal
    Terminal Display Should Contain    ログインしました

A Second Login Finds The Same Platform ID
    [Tags]    STB-LOGIN-002
    ${first}=    Log In On Terminal
    ${first_id}=    Get Flow Value    ${first}    platform_id
    Log Out Of Terminal
    ${second}=    Log In On Terminal
    ${second_id}=    Get Flow Value    ${second}    platform_id
    Should Be Equal    ${first_id}    ${second_id}
    Audit Log Should Contain    event=login    outcome=ok    detail=link existing

Facility Booking Is Committed With Its Fee
    [Tags]    STB-BOOK-001
    ${result}=    Book Facility    gym-a    2026-12-01    09:00
    Flow Should Be Recorded As Committed    ${result}
    ${state}=    Get Relying Party State
    Dictionary Should Contain Key    ${state}[bookings]    gym-a/2026-12-01/09:00
    Terminal Display Should Contain    予約しました

A Booked Slot Is Refused And Nothing Is Charged
    [Tags]    STB-BOOK-002
    ${first}=    Book Facility    hall-1    2026-12-02    10:00
    Flow Should Succeed    ${first}
    Take Relying Party Snapshot
    ${second}=    Book Facility    hall-1    2026-12-02    10:00
    Flow Should End With    ${second}    refused
    Relying Party Effects Should Be Unchanged
    Terminal Display Should Contain    slot_taken

Health Records Are Shown After Login And Audited
    [Tags]    STB-HEALTH-001
    ${result}=    View Health Records
    ${records}=    Get Flow Value    ${result}    records
    Length Should Be    ${records}    2
    Audit Log Should Contain    event=view    service=health_records    outcome=ok
    Terminal Display Should Contain    健診結果 2件

Elderly Watch Check-In Is Recorded And The Family Notified
    [Tags]    STB-WATCH-001
    ${result}=    Check In For Elderly Watch    元気
    Flow Should Be Recorded As Committed    ${result}
    ${state}=    Get Relying Party State
    Should Be Equal    ${state}[watch_log][-1][status]    元気
    Terminal Display Should Contain    見守りチェックインを送信しました
