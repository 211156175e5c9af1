*** Settings ***
Documentation       券面事項確認AP: the card face as data, opened by 照合番号A ``0013`` or B ``0012`` (JPKI-FACTS §10).
Resource            ../resources/card.resource
Suite Setup         Open Card Under Test
Suite Teardown      Close Device
Test Setup          Begin Requirement
Test Teardown       End Requirement
Test Tags           card    visual-ap


*** Test Cases ***
Card Face Needs A Collation Number
    [Tags]    VIS-FACE-001
    ${status}=    Read Applet File Status    visual    0002
    Status Should Be    ${status}    6982

Card Face Reads After 照合番号A
    [Documentation]    ``FF 20 {DF21 offsets, DF22 … DF2A}``: birth date and sex of the holder, PNG and JPEG 2000
    ...                images, a 256-byte signature, the expiry date.
    [Tags]    VIS-FACE-002    sends-pin
    Verify Card Face Collation Number    A
    Card Face Should Match The Holder

Card Face Reads After 照合番号B
    [Tags]    VIS-FACE-003    sends-pin
    Verify Card Face Collation Number    B
    Card Face Should Match The Holder

Files 0001 And 0003 To 0005 Exist Beside The Card Face
    [Tags]    VIS-EF-001
    Applet Files Should Exist    visual    0001    0002    0003    0004    0005

Collation Number A Retry Query Answers 63Cx
    [Documentation]    The retry limit of 照合番号A/B is unpublished (one source suggests 3): any 63Cx passes.
    [Tags]    VIS-PIN-001
    ${status}=    Query PIN Object    visual    0013
    Should Match Regexp    ${status}    ^63C[1-9A-F]$

Card Face Integrity Record Matches
    [Documentation]    UNCERTAIN layout (modelled on the text AP's EF 0003): hashes of EF 0001 and 0002, signed.
    [Tags]    VIS-INT-001    uncertain    sends-pin
    Verify Card Face Collation Number    A
    Integrity Record Should Match    visual
