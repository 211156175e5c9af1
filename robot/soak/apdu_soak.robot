*** Settings ***
Documentation       The card answers ``${SOAK_APDUS}`` READ BINARY commands alike, each checked, with a bounded log.
...                 ``hil run soak --device pcsc:ACS -- --variable SOAK_APDUS:100000`` sets the count.
Resource            ../resources/card.resource
Suite Setup         Open Card Under Test
Suite Teardown      Close Device
Test Setup          Begin Requirement
Test Teardown       End Requirement
Test Tags           soak


*** Variables ***
${SOAK_APDUS}       1000000


*** Test Cases ***
The Card Answers A Million Reads Of The Auth Certificate Header Alike
    [Tags]    SOAK-READ-001
    Select JPKI AP
    Select EF    000A
    ${figures}=    Repeat Exchange    00B0000004    times=${SOAK_APDUS}    same_answer=True
    Should Be Equal As Integers    ${figures}[count]    ${SOAK_APDUS}
    Should Be Equal As Integers    ${figures}[failures]    0

The Card Answers A Select And Read Script Alike Every Round
    [Tags]    SOAK-SCRIPT-001
    Select JPKI AP
    ${figures}=    Repeat Exchange    00A4020C02000A    00B0000004    00A4020C020001    00B0000004 -> 6982
    ...    times=${{ max(1, int(${SOAK_APDUS}) // 4) }}    same_answer=True
    Should Be Equal As Integers    ${figures}[failures]    0
