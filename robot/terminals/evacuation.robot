*** Settings ***
Documentation       Evacuation orders with the resident's own name on the household TV, and shelter check-in with
...                 the card tied back to the order (planning document: 徳島県美波町, テレビ画面に個人名付きの避難指示,
...                 避難所の入所管理に個人番号カード). The card's auth certificate is checked by OCSP at the authority.
Resource            ../resources/ceremony.resource
Suite Setup         Open Ceremony Card    ${CARD}
Suite Teardown      Close Ceremony Devices Under Test
Test Setup          Begin Evacuation Requirement
Test Teardown       Log APDU Trace
Test Tags           terminal    evacuation


*** Test Cases ***
The Order Shows Each Resident's Own Name On The Household TV
    [Tags]    EVAC-ORDER-001
    ${order}=    Issue Evacuation Order    美波町東部    日和佐小学校
    TV Screen Should Show    stb-taro    美波　太郎様
    TV Screen Should Show    stb-taro    日和佐小学校
    TV Screen Should Show    stb-hanako    四国　花子様
    TV Screen Should Be Empty    stb-west

Shelter Check-In With The Card Ties Back To The Order
    [Documentation]    The dashboard stops listing the resident who touched the card; a second touch changes nothing.
    [Tags]    EVAC-SHLT-001
    ${order}=    Issue Evacuation Order    美波町東部    日和佐小学校
    Residents Not Arrived Should Be    ${order}    hanako    taro
    ${who}=    Check In At Shelter With Card    日和佐小学校
    Should Be Equal    ${who}    taro
    Residents Not Arrived Should Be    ${order}    hanako
    Check In At Shelter With Card    日和佐小学校
    Residents Not Arrived Should Be    ${order}    hanako

A Revoked Card Is Refused At The Shelter Reader
    [Documentation]    The card's auth certificate revoked at the authority: the reader says so (staff check the
    ...                resident in by hand) and the dashboard still lists the resident.
    [Tags]    EVAC-SHLT-002
    ${order}=    Issue Evacuation Order    美波町東部    日和佐小学校
    Revoke Card Auth Certificate At Authority
    Shelter Check In Should Be Refused    日和佐小学校    revoked
    Residents Not Arrived Should Be    ${order}    hanako    taro


*** Keywords ***
Begin Evacuation Requirement
    [Documentation]    A new authority and evacuation service; the card's holder and a neighbour live in the east
    ...                district, another household in the west.
    Start APDU Trace
    Start Fresh Authority
    Start Evacuation Service
    Register Card Holder As Resident    taro    美波　太郎    美波町東部    stb-taro
    Register Test Holder As Resident    phone    hanako    四国　花子    美波町東部    stb-hanako
    Register Test Holder As Resident    revoked    jiro    西部　次郎    美波町西部    stb-west
