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

AP Information Is FF40 Of At Least 256 Bytes
    [Documentation]    JPKI-FACTS §10: ``FF 40 {DF41 04, DF42 10, DF43 …}``, free; a read of 256 gets 256.
    [Tags]    TXT-INF-001
    AP Information Should Be Well Formed    text

Integrity Record Needs The Text PIN
    [Tags]    TXT-INT-001
    ${status}=    Read Applet File Status    text    0003
    Status Should Be    ${status}    6982

Integrity Record Covers EF 0001 And EF 0002
    [Documentation]    EF 0003: 336 bytes, SHA-256 of both data EFs, signed under EF 0004's key.
    [Tags]    TXT-INT-002
    Verify PIN    text
    Integrity Record Should Match    text

CV Certificate Is Free And Self-Consistent
    [Documentation]    EF 0004: a 568-byte card-verifiable certificate ``7F 21 {5F 4E, 5F 37}``.
    [Tags]    TXT-CVC-001
    ${status}=    Read Applet File Status    text    0004
    Status Should Be    ${status}    9000
    CV Certificate Should Be Well Formed    text

Key 0012 Exists And Is Blocked
    [Documentation]    JPKI-FACTS §10: retry query ``63C0``, VERIFY ``6984``.
    [Tags]    TXT-KEY-001
    Blocked Key Should Refuse VERIFY    text    0012

照合番号B Has 14 Digits And Opens The Basic Four
    [Documentation]    和暦 YYMMDD, the 4-digit expiry year and the 4-digit security code (JPKI-FACTS §10).
    [Tags]    TXT-B4-006
    ${status}=    Query PIN Object    text    0015
    Should Match Regexp    ${status}    ^63C[1-9A-F]$
    Verify Collation Number    B
    ${status}=    Read Text File Status    basic_four
    Status Should Be    ${status}    9000
