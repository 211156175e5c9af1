"""What the virtual PICC counts and remembers of the link, for keywords and benchmarks to read."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class LinkStats:
    """Counters of one PICC since start (or the last reset). Frame sizes include PCB and CRC, like FSC."""

    frames_in: int = 0
    frames_out: int = 0
    sensb_requests: int = 0
    activations: int = 0
    apdus: int = 0
    i_blocks_in: int = 0
    i_blocks_out: int = 0
    chained_blocks_in: int = 0  # I-blocks from the reader with the chaining bit
    chained_blocks_out: int = 0
    acks_in: int = 0
    acks_out: int = 0
    naks_in: int = 0
    wtx_sent: int = 0
    retransmissions: int = 0
    deselects: int = 0
    rf_offs: int = 0
    largest_frame_in: int = 0
    largest_frame_out: int = 0
    oversize_frames_in: int = 0  # longer than the FSC the ATQB announced
    dropped_frames: int = 0  # lost on purpose (link faults)
    ignored_frames: int = 0  # heard but not for us in our state
    bytes_in: int = 0  # frame bytes heard, CRC_B counted: what the reader put on the air
    bytes_out: int = 0  # frame bytes sent, CRC_B counted (dropped frames too: they were on the air)


@dataclass(frozen=True)
class ExchangeRecord:
    """One APDU as the PICC saw it: how many blocks each way, how many S(WTX)."""

    command_length: int
    response_length: int
    blocks_in: int
    blocks_out: int
    wtx: int
    elapsed_ms: float
    outcome: str = "answered"  # or "removed", "abandoned"

    @property
    def chained_command(self) -> bool:
        return self.blocks_in > 1

    @property
    def chained_response(self) -> bool:
        return self.blocks_out > 1


@dataclass
class LinkFaults:
    """Frames to lose on purpose, to drive the reader's R(NAK) recovery."""

    drop_responses: int = 0  # the next N frames the PICC sends are lost
    ignore_commands: int = 0  # the next N blocks the reader sends are not heard

