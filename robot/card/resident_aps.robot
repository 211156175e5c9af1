*** Settings ***
Documentation       共通AP and 住基AP: PIN ``001C`` (4 digits, 3 tries) in each, and 共通AP's record file ``0001``
...                 (JPKI-FACTS §10).
Resource            ../resources/card.resource
Suite Setup         Open Card Under Test
Suite Teardown      Close Device
Test Setup          Begin Requirement
Test Teardown       End Requirement
Test Tags           card    resident-aps


*** Test Cases ***
Common AP PIN 001C Answers The Retry Query
    [Tags]    CMN-PIN-001
    ${status}=    Query PIN Object    common    001C
    Status Should Be    ${status}    63C3

Common AP Record 1 Holds The Card Identification
    [Documentation]    ``00 B2 01 0C 00``: record 1 of EF 0001 (SFI 1) is ``01 1C`` and 28 digits.
    [Tags]    CMN-REC-001
    Card Identification Record Should Be Well Formed

Common AP EF 0001 Is A Record File
    [Documentation]    READ BINARY on a record EF is refused with 6981.
    [Tags]    CMN-REC-002
    ${status}=    Read Applet File Status    common    0001
    Status Should Be    ${status}    6981

Juki AP PIN 001C Answers The Retry Query
    [Tags]    JUKI-PIN-001
    ${status}=    Query PIN Object    juki    001C
    Status Should Be    ${status}    63C3

Juki AP PIN 001C Answers By Short Identifier
    [Tags]    JUKI-PIN-002
    ${status}=    Query PIN By Short Identifier    juki    001C
    Status Should Be    ${status}    63C3
