*** Settings ***
Documentation       The card pulled, the phone's link lost, the authority crashed, at each step: the attempt stops
...                 with a clear outcome, the state it leaves lets the same attempt complete on retry (same request
...                 ids, nothing applied twice), and there is never a half-issued certificate or a second live phone.
Resource            ../resources/ceremony.resource
Suite Setup         Open Ceremony Devices Under Test
Suite Teardown      Close Ceremony Devices Under Test
Test Setup          Begin Ceremony Requirement
Test Teardown       End Ceremony Requirement


*** Test Cases ***
Card Pulled During The Sign Password VERIFY
    [Tags]    CER-CARD-001    fault    contactless
    Card Pulled During A Command Is Recovered By A Retry    VERIFY

Card Pulled While The Sign Certificate Is Read
    [Tags]    CER-CARD-002    fault
    Card Pulled During A Command Is Recovered By A Retry    READ BINARY

Card Pulled During The Signature
    [Tags]    CER-CARD-003    fault
    Card Pulled During A Command Is Recovered By A Retry    SIGN

Phone Link Lost During Key Generation
    [Tags]    CER-PHN-001    fault
    Phone Lost During A Command Is Recovered By A Retry    GENERATE    2    keys

Phone Link Lost While The Certificates Are Stored
    [Tags]    CER-PHN-002    fault
    Phone Lost During A Command Is Recovered By A Retry    UPDATE BINARY    3    store

Phone Link Lost Between The Two First PINs
    [Tags]    CER-PHN-003    fault
    Phone Lost During A Command Is Recovered By A Retry    CHANGE    2    pins

Authority Crashes Before Committing The Application
    [Tags]    CER-AUTH-001    fault
    Authority Crash Is Recovered By A Retry    apply    before_commit

Authority Crashes Before Committing The Issue
    [Tags]    CER-AUTH-002    fault
    Authority Crash Is Recovered By A Retry    issue    before_commit

Authority Crashes After Committing The Issue, Before Answering
    [Documentation]    The certificates exist but the app never saw them: the retry gets the same two, not two more.
    [Tags]    CER-AUTH-003    fault
    Authority Crash Is Recovered By A Retry    issue    after_commit

Authority Crashes After Opening The Ceremony, Before Answering
    [Tags]    CER-AUTH-004    fault
    Authority Crash Is Recovered By A Retry    open    after_commit

Authority Crashes Before Committing The Completion
    [Tags]    CER-AUTH-005    fault
    Authority Crash Is Recovered By A Retry    complete    before_commit


*** Keywords ***
Card Pulled During A Command Is Recovered By A Retry
    [Documentation]    The card leaves during ``${command}``: nothing is issued, no try is spent, a retry provisions.
    [Arguments]    ${command}
    Pull Card During Next App Command    ${command}
    ${result}=    Run Phone Download Ceremony
    Ceremony Should End With    ${result}    card_removed    card
    Authority Should Hold    certificates=0    bindings=0
    Put Card Back
    Use Ceremony Device As Device Under Test    card
    ${tries}=    Query PIN Tries    sign
    Should Be Equal As Integers    ${tries}    5    a pulled VERIFY must not cost a try
    ${retried}=    Retry Phone Download Ceremony
    Ceremony Should Have Provisioned The Phone    ${retried}
    Authority Should Hold    ceremonies=1    certificates=2    bindings=1

Phone Lost During A Command Is Recovered By A Retry
    [Documentation]    The phone's link drops at ``${command}``: the attempt ends at ``${step}``, a retry provisions.
    [Arguments]    ${command}    ${occurrence}    ${step}
    Lose Phone Link During Next App Command    ${command}    ${occurrence}
    ${result}=    Run Phone Download Ceremony
    Ceremony Should End With    ${result}    phone_lost    ${step}
    Bring Phone Back
    ${retried}=    Retry Phone Download Ceremony
    Ceremony Should Have Provisioned The Phone    ${retried}
    Authority Should Hold    ceremonies=1    certificates=2    bindings=1

Authority Crash Is Recovered By A Retry
    [Documentation]    The authority crashes at ``${step}`` (``${point}``): unreachable, then provisioned after a restart.
    [Arguments]    ${step}    ${point}
    Crash Authority During    ${step}    ${point}
    ${result}=    Run Phone Download Ceremony
    Ceremony Should End With    ${result}    authority_unreachable
    Authority Should Have Crashed
    Restart Authority
    Authority Records Should Be Consistent
    ${retried}=    Retry Phone Download Ceremony
    Ceremony Should Have Provisioned The Phone    ${retried}
    Authority Should Hold    ceremonies=1    certificates=2    bindings=1
