*** Settings ***
Documentation       Shelter (避難所) reception kiosk: check-in and check-out recorded against the platform ID.
Resource            ../resources/terminal.resource
Suite Setup         Open Terminal Under Test
Suite Teardown      Close Terminal Under Test
Test Setup          Begin Terminal Requirement
Test Teardown       End Terminal Requirement
Test Tags           terminal    kiosk    shelter


*** Variables ***
${TERMINAL}         virtual:card?via=kiosk
${KIND}             kiosk


*** Test Cases ***
Check-In Is Recorded Against The Platform ID
    [Tags]    SHELTER-IN-001
    ${result}=    Check In At Shelter    school-1
    Flow Should Be Recorded As Committed    ${result}
    ${platform_id}=    Get Flow Value    ${result}    platform_id
    ${state}=    Get Relying Party State
    List Should Contain Value    ${state}[occupancy][school-1]    ${platform_id}
    Terminal Display Should Contain    第一小学校 体育館に入所を記録しました

A Second Check-In At The Same Shelter Is Refused
    [Tags]    SHELTER-IN-002
    ${first}=    Check In At Shelter    school-2
    Flow Should Succeed    ${first}
    Take Relying Party Snapshot
    ${second}=    Check In At Shelter    school-2
    Flow Should End With    ${second}    refused
    Relying Party Effects Should Be Unchanged
    Terminal Display Should Contain    already_checked_in

Check-Out Is Recorded
    [Tags]    SHELTER-OUT-001
    ${in}=    Check In At Shelter    hall-2
    Flow Should Succeed    ${in}
    ${platform_id}=    Get Flow Value    ${in}    platform_id
    ${out}=    Check Out Of Shelter    hall-2
    Flow Should Be Recorded As Committed    ${out}
    ${state}=    Get Relying Party State
    List Should Not Contain Value    ${state}[occupancy][hall-2]    ${platform_id}
    Terminal Display Should Contain    地区公民館からの退所を記録しました

Check-Out Without Check-In Is Refused
    [Tags]    SHELTER-OUT-002
    Take Relying Party Snapshot
    ${result}=    Check Out Of Shelter    park-3
    Flow Should End With    ${result}    refused
    Relying Party Effects Should Be Unchanged
    Terminal Display Should Contain    not_checked_in
