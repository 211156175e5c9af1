*** Settings ***
Documentation       The e-mailbox (電子私書箱) address-change notice of the planning document ⑤: the authority's
...                 revocation of a sign certificate after a move starts a notice; the person logs in with the auth
...                 certificate (a move leaves it valid) and approves; each business the person consented to receives
...                 the new address exactly once, even across retries, lost acknowledgements and a business down.
Resource            ../resources/ceremony.resource
Suite Setup         Open Ceremony Card    ${CARD}
Suite Teardown      Run Keywords    Stop Mailbox    AND    Close Ceremony Devices Under Test
Test Setup          Begin Mailbox Requirement
Test Teardown       Run Keywords    Log APDU Trace    AND    Put Card Back
Test Tags           terminal    mailbox


*** Variables ***
${NEW_ADDRESS}      東京都港区芝公園四丁目２番８号


*** Test Cases ***
A Move Starts One Change Notice
    [Tags]    MBOX-MOVE-001
    Revoke Enrolled Sign Certificate At Authority    holder_moved
    ${started}=    Sync Mailbox With Authority
    Should Be Equal As Integers    ${started}    1
    ${again}=    Sync Mailbox With Authority
    Should Be Equal As Integers    ${again}    0
    Member Should Have Notices    taro    1    pending

The Approved Address Reaches Each Consented Business Once
    [Tags]    MBOX-MOVE-002
    Revoke Enrolled Sign Certificate At Authority    holder_moved
    Sync Mailbox With Authority
    Log In To Mailbox With Card
    Approve Address Change    ${NEW_ADDRESS}
    Member Should Have Notices    taro    1    approved
    Business Should Have Received Address Once    post    ${NEW_ADDRESS}
    Business Should Have Received Address Once    insurer    ${NEW_ADDRESS}
    Business Should Have Received Nothing    broadcaster

Retries, A Lost Acknowledgement And A Business Down Still Deliver Exactly Once
    [Tags]    MBOX-MOVE-003    fault
    Revoke Enrolled Sign Certificate At Authority    holder_moved
    Sync Mailbox With Authority
    Log In To Mailbox With Card
    Business Loses Next Acknowledgement    post
    Business Is Down For Next Delivery    insurer
    Approve Address Change    ${NEW_ADDRESS}
    Approve Address Change    ${NEW_ADDRESS}    retry=True
    ${pending}=    Deliver Pending Notices
    Should Be Equal As Integers    ${pending}    0
    Approve Address Change    ${NEW_ADDRESS}    retry=True
    Business Should Have Received Address Once    post    ${NEW_ADDRESS}
    Business Should Have Received Address Once    insurer    ${NEW_ADDRESS}

A Lost Card Starts No Address Notice
    [Documentation]    A revocation for another reason (card lost) is not a move: no notice, nothing sent.
    [Tags]    MBOX-MOVE-004
    Revoke Enrolled Sign Certificate At Authority    card_lost
    ${started}=    Sync Mailbox With Authority
    Should Be Equal As Integers    ${started}    0
    Business Should Have Received Nothing    post

A Card With Revoked Certificates Cannot Enrol
    [Tags]    MBOX-ENROL-001
    Swap In Card Of Profile    revoked-card
    Enrolment Should Be Refused    hanako    revoked    post


*** Keywords ***
Begin Mailbox Requirement
    [Documentation]    A new authority and mailbox (post, insurer and broadcaster inboxes); the card's holder enrolled
    ...                with consent for the post office and the insurer.
    Start APDU Trace
    Start Fresh Authority
    Start Mailbox    post    insurer    broadcaster
    Enrol Card Holder In Mailbox    taro    post    insurer
