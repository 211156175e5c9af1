*** Settings ***
Documentation       券面事項入力補助AP: My Number and the basic four (JPKI-FACTS §5).
Resource            ../resources/card.resource
Suite Setup         Open Card Under Test
Suite Teardown      Close Device
Test Setup          Begin Requirement
Test Teardown       End Requirement
Test Tags           card    text-ap


*** Test Cases ***
Text PIN Retry Query Answers 63C3
    [Tags]    TXT-PIN-001
    ${status}=    Query PIN Status    text
    Status Should Be    ${status}    63C3

My Number Needs A PIN
    [Tags]    TXT-NUM-001
    ${status}=    Read Text File Status    my_number
    Status Should Be    ${status}    6982

My Number Reads After The Text PIN
    [Tags]    TXT-NUM-002
    Verify PIN    text
    ${number}=    Read My Number
    My Number Should Be Expected    ${number}

My Number Reads After 照合番号A
    [Tags]    TXT-NUM-003
    Verify Collation Number    A
    ${number}=    Read My Number
    My Number Should Be Expected    ${number}

Basic Four Needs A PIN
    [Tags]    TXT-B4-001
    ${status}=    Read Text File Status    basic_four
    Status Should Be    ${status}    6982

Basic Four Decodes After The Text PIN
    [Tags]    TXT-B4-002
    Verify PIN    text
    ${basic}=    Read Basic Four
    Basic Four Should Be Expected    ${basic}

Basic Four Reads After 照合番号B
    [Tags]    TXT-B4-003
    Verify Collation Number    B
    ${basic}=    Read Basic Four
    Basic Four Should Be Expected    ${basic}

Basic Four Offsets Point At Their Fields
    [Tags]    TXT-B4-004
    Verify PIN    text
    Basic Four Offsets Should Point At Fields

照合番号A Does Not Open The Basic Four
    [Tags]    TXT-B4-005
    Verify Collation Number    A
    ${status}=    Read Text File Status    basic_four
    Status Should Be    ${status}    6982
