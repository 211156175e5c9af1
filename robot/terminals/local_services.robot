*** Settings ***
Documentation       More services of the planning document at their readers, with the card checked at the issuing
...                 authority: children's school-gate touches told to the parents by mail and on the TV (南部町),
...                 the maternal and child health handbook after card login (前橋市), event tickets from the kiosk
...                 and ticketless entry with the card (検討項目①).
Resource            ../resources/ceremony.resource
Library             Collections
Suite Setup         Open Ceremony Card    ${CARD}
Suite Teardown      Close Ceremony Devices Under Test
Test Setup          Begin Local Service Requirement
Test Teardown       Run Keywords    Log APDU Trace    AND    Put Card Back
Test Tags           terminal


*** Test Cases ***
Gate Touches Reach The Parent By Mail And On The TV
    [Documentation]    A double tap at the same gate tells nobody twice.
    [Tags]    GATE-TOUCH-001    school
    Register Card Holder As Child    taro    太郎    parent@example.test    stb-home
    ${told}=    Touch Card At Gate    正門    in
    Should Be True    ${told}
    ${again}=    Touch Card At Gate    正門    in
    Should Not Be True    ${again}
    Touch Card At Gate    図書館    in
    Parent Should Have Mails    parent@example.test    太郎さんが正門に到着しました    太郎さんが図書館に到着しました
    Parent TV History Should Be    stb-home    太郎さんが正門に到着しました    太郎さんが図書館に到着しました

An Unregistered Or Revoked Card Tells No Parent
    [Tags]    GATE-TOUCH-002    school
    Gate Touch Should Be Refused    正門    not_registered
    Swap In Card Of Profile    revoked-card
    Register Card Holder As Child    hanako    花子    other@example.test    stb-other
    Gate Touch Should Be Refused    正門    revoked
    Parent Should Have Mails    other@example.test

The Handbook Shows Only The Parent's Own Children
    [Tags]    MCH-VIEW-001    handbook
    Register Card Holder As Parent    mother    child-1
    Add Health Record    child-1    vaccination    2026-04-01    BCG
    Add Health Record    child-1    checkup    2026-06-15    4か月健診
    Add Health Record    child-2    vaccination    2026-05-01    MR
    ${records}=    View Health Handbook With Card
    Should Be Equal    ${records}[child-1]    ${{["2026-04-01 vaccination BCG", "2026-06-15 checkup 4か月健診"]}}
    Dictionary Should Not Contain Key    ${records}    child-2
    Health Views Audited Should Be    1

A Revoked Card Opens No Handbook
    [Tags]    MCH-VIEW-002    handbook
    Swap In Card Of Profile    revoked-card
    Register Card Holder As Parent    mother    child-1
    Health Handbook Login Should Be Refused    revoked
    Health Views Audited Should Be    0

A Kiosk Ticket Admits The Card Once
    [Documentation]    One ticket per card and event (asking again returns it); the venue gate admits it once.
    [Tags]    TICKET-ENTRY-001    tickets
    Open Ticket Sales    summer-festival    100
    ${ticket}=    Buy Ticket At Kiosk With Card    summer-festival
    ${same}=    Buy Ticket At Kiosk With Card    summer-festival
    Should Be Equal    ${ticket}    ${same}
    ${admitted}=    Enter Venue With Card    summer-festival
    Should Be Equal    ${admitted}    ${ticket}
    Venue Entry Should Be Refused    summer-festival    already_entered

No Ticket, No Entry; A Sold-Out Event Sells None
    [Tags]    TICKET-ENTRY-002    tickets
    Open Ticket Sales    concert    0
    Ticket Purchase Should Be Refused    concert    sold_out
    Venue Entry Should Be Refused    concert    no_ticket


*** Keywords ***
Begin Local Service Requirement
    [Documentation]    Each requirement: an empty trace, a fresh authority and the local services started.
    Start APDU Trace
    Start Fresh Authority
    Start Local Services
