*** Settings ***
Documentation       Convenience-store kiosk: certificate issuance (コンビニ交付) with the basic four read from
...                 the text AP after the text PIN, then login with the auth certificate and a confirmed payment.
Resource            ../resources/terminal.resource
Suite Setup         Open Terminal Under Test
Suite Teardown      Close Terminal Under Test
Test Setup          Begin Terminal Requirement
Test Teardown       End Terminal Requirement
Test Tags           terminal    kiosk


*** Variables ***
${TERMINAL}         virtual:card?via=kiosk
${KIND}             kiosk


*** Test Cases ***
A Residence Certificate Is Issued With The Card's Basic Four
    [Documentation]    Text PIN, basic four (name, address) from the text AP, login, issuance and fee in one
    ...                transaction; the platform checks the basic four against the resident registry.
    [Tags]    KIOSK-ISSUE-001
    ${result}=    Issue Certificate At Kiosk    residence    copies=2
    Flow Should Be Recorded As Committed    ${result}
    ${state}=    Get Relying Party State
    Should Be Equal    ${state}[issued][-1][document]    residence
    Should Be Equal As Integers    ${state}[payments][-1][amount]    600
    ${name}=    Get Flow Value    ${result}    name
    Should Be Equal    ${state}[issued][-1][name]    ${name}
    Terminal Display Should Contain    住民票の写しを2通交付しました

A Seal Certificate Is Issued Too
    [Tags]    KIOSK-ISSUE-002
    ${result}=    Issue Certificate At Kiosk    seal
    Flow Should Be Recorded As Committed    ${result}
    Terminal Display Should Contain    印鑑登録証明書を1通交付しました

A Wrong Text PIN Issues Nothing And Costs One Try
    [Documentation]    The terminal VERIFYs the typed PIN once, shows the tries left and stops; nothing is issued.
    [Tags]    KIOSK-PIN-001    destructive
    [Teardown]    End Destructive Terminal Requirement
    ${before}=    Query PIN Tries    text
    Take Relying Party Snapshot
    Enter Wrong PIN On Terminal    text
    ${result}=    Issue Certificate At Kiosk    residence
    Flow Should End With    ${result}    wrong_pin
    ${after}=    Query PIN Tries    text
    Should Be Equal As Integers    ${after}    ${before - 1}
    Terminal Display Should Contain    残り${after}回
    Relying Party Effects Should Be Unchanged
