*** Settings ***
Documentation       The virtual card through every bridge against a recording of it made through pcscd + vpcd
...                 (``fixtures/recordings/card-pcsc.jsonl``: the whole card suite, 508 commands). Each bridge gets
...                 the recording's commands and must answer as recorded: a bridge that changes a byte, a status
...                 word or a length fails here, naming the command and the test it came from. Answers larger than
...                 a reader carries are read in pieces; certificate serials, validity and signatures, challenges
...                 and signatures are not compared (``hil compare``). After a deliberate change of the virtual
...                 card, record it again (``fixtures/recordings/README.md``).
Library             harness.keywords.JPKILibrary
Test Tags           transport    recordings


*** Variables ***
${RECORDING}        card-pcsc.jsonl


*** Test Cases ***
The In-Process Card Answers Like The pcscd Recording
    [Documentation]    The card itself, with no bridge: the recording is still the card's.
    [Tags]    TRN-REC-001
    Device Should Answer Like Recording    virtual:card    ${RECORDING}

The Card Behind pcscd And vpcd Answers Like Its Recording
    [Documentation]    The bridge the recording was made through, run again.
    [Tags]    TRN-REC-002    pcsc
    Device Should Answer Like Recording    virtual:card?via=pcsc    ${RECORDING}

The T=0 Card Behind pcscd Answers Like The T=1 Recording
    [Documentation]    GET RESPONSE and 6Cxx re-sends of the reader put together the same answers.
    [Tags]    TRN-REC-003    pcsc
    Device Should Answer Like Recording    virtual:card?via=pcsc&t0=1    ${RECORDING}

The Card Over nfcpy's UDP Link Answers Like The pcscd Recording
    [Documentation]    ISO 14443-4 blocks, chaining and WTX change no answer.
    [Tags]    TRN-REC-004    contactless
    Device Should Answer Like Recording    virtual:card?via=nfc    ${RECORDING}

The Card Behind The Kiosk Reader Module Answers Like The pcscd Recording
    [Documentation]    STX/ETX framing on a pty changes no answer.
    [Tags]    TRN-REC-005    serial
    Device Should Answer Like Recording    virtual:card?via=kiosk    ${RECORDING}

The Card Behind The Set-Top Box Reader Answers Like The pcscd Recording
    [Documentation]    Length-prefixed frames of at most 256 bytes of answer change no answer.
    [Tags]    TRN-REC-006    serial
    Device Should Answer Like Recording    virtual:card?via=stb    ${RECORDING}

The Card Behind A Short-APDU Reader Answers Like The pcscd Recording
    [Documentation]    A reader without extended APDUs reads the same bytes in pieces.
    [Tags]    TRN-REC-007
    Device Should Answer Like Recording    virtual:card?extended=0    ${RECORDING}

A Replay Of The Recording Answers Like It
    [Documentation]    The replay: device answers every recorded command in the state it was recorded in.
    [Tags]    TRN-REC-008
    ${path}=    Recording Path    ${RECORDING}
    Device Should Answer Like Recording    replay:${path}    ${RECORDING}
