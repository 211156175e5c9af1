*** Settings ***
Documentation       Hospital reception kiosk: online insurance eligibility (オンライン資格確認, the auth certificate
...                 serial linked to the insured number) and payment confirmed with the card's signature.
Resource            ../resources/terminal.resource
Suite Setup         Open Terminal Under Test
Suite Teardown      Close Terminal Under Test
Test Setup          Begin Terminal Requirement
Test Teardown       End Terminal Requirement
Test Tags           terminal    kiosk    hospital


*** Variables ***
${TERMINAL}         virtual:card?via=kiosk
${KIND}             kiosk


*** Test Cases ***
Eligibility Is Found By The Auth Certificate Serial
    [Tags]    HOSP-ELIG-001
    ${result}=    Check Insurance Eligibility
    Flow Should Succeed    ${result}
    Insured Number Should Match Card    ${result}
    ${valid}=    Get Flow Value    ${result}    valid
    Should Be True    ${valid}
    Audit Log Should Contain    event=eligibility    outcome=ok
    Terminal Display Should Contain    資格確認済み

Payment Is Committed With A Receipt
    [Tags]    HOSP-PAY-001
    ${eligibility}=    Check Insurance Eligibility
    Flow Should Succeed    ${eligibility}
    ${result}=    Pay At Reception    1500
    Flow Should Be Recorded As Committed    ${result}
    ${state}=    Get Relying Party State
    Should Be Equal As Integers    ${state}[payments][-1][amount]    1500
    Terminal Display Should Contain    お支払いが完了しました

A Card Pulled During The Payment Leaves No Half-Done Transaction
    [Documentation]    The card leaves while it signs the payment confirmation: the terminal aborts, the platform
    ...                records the abort, and no payment exists.
    [Tags]    HOSP-PULL-001    fault
    [Teardown]    End Destructive Terminal Requirement
    ${eligibility}=    Check Insurance Eligibility
    Flow Should Succeed    ${eligibility}
    Take Relying Party Snapshot
    Pull Card During Command    SIGN
    ${result}=    Pay At Reception    2000
    Flow Should End With    ${result}    card_removed
    ${tx}=    Get Flow Value    ${result}    tx
    Transaction Status Should Be    ${tx}    aborted
    Audit Log Should Contain    event=tx_abort    tx=${tx}    detail=card_removed
    Audit Log Should Not Contain    event=tx_commit    tx=${tx}
    No Transaction Should Be Pending
    Relying Party Effects Should Be Unchanged
    Terminal Display Should Contain    カードが取り外されました
