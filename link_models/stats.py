"""LinkStats: what one transmission cost and how well it went, in one flat record.

Resource accounting (per transmission): `data_symbols` are the data resource elements of all frames sent
(the zero-padded tail of the last frame included, since it occupies air time), `pilot_symbols` the pilot
REs, `cp_samples` the cyclic-prefix samples, and `total_symbols` all time-domain samples on air
(frames x OFDM symbols x (FFT size + CP)). `airtime_s` follows from the subcarrier spacing.
HARQ retransmissions are counted like first transmissions (`codeword_transmissions`, frames, symbols).
`frames_lost` counts frames that never arrived (a radio link's receiver did not find them): their digital
bits count as errors, their analog values come back as 0 with the prior variance (link_models.mapping).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass
class LinkStats:
    payload_bits: int = 0          # information bits delivered (digital) or side-information header bits (analog)
    coded_bits: int = 0            # bits after channel coding (digital); 0 for analog
    data_symbols: int = 0
    pilot_symbols: int = 0
    cp_samples: int = 0
    total_symbols: int = 0
    frames: int = 0
    frames_lost: int = 0            # frames sent that the receiver never found (over the air; 0 in simulation)
    codewords: int = 0
    bit_errors: int | None = None
    ber: float | None = None
    block_errors: int | None = None
    bler: float | None = None
    airtime_s: float = 0.0
    snr_db: float | None = None     # configured Es/N0 per resource element
    ebno_db: float | None = None    # configured Eb/N0 per information bit (digital)
    snr_est_db: float | None = None  # measured post-equaliser SNR: 1 / mean |x_hat - x|^2 over the sent symbols
    noise_var: float | None = None   # mean effective noise variance reported by the equaliser (symbol domain)
    padding_bits: int = 0           # zero bits appended to fill the last codeword (digital)
    header_bits: int = 0            # side information (analog: scale and length)
    values: int = 0                 # analog values sent
    nmse: float | None = None       # analog: mean squared error / mean square of the values
    no_est: float | None = None     # the N0 the receiver used: estimated from the pilots (ls, lmmse) or true (perfect)
    mcs_index: int | None = None    # digital: the TS 38.214 MCS (None: modulation and code as configured)
    mcs_table: int | None = None    # digital: the TS 38.214 MCS table of mcs_index (3: auto's low-rate rows)
    modulation: str | None = None   # digital: the constellation used
    code_rate: float | None = None  # digital: k / n, information bits per coded bit sent
    transmissions: int | None = None  # digital: HARQ transmissions the worst codeword needed (1 without HARQ)
    codeword_transmissions: int = 0   # digital: codewords sent, retransmissions included
    crc_failures: int | None = None   # digital with HARQ: codewords the receiver's CRC still rejects at the end
    # link_models.scheduled (OLLA, ARQ, continuous fading): None on the one-shot path
    latency_slots: int | None = None      # frames (slots) from the first transmission to the last codeword decoded
    first_tx_blocks: int | None = None    # transport blocks (codewords) sent for the first time
    first_tx_nacks: int | None = None     # of them, how many failed their first transmission
    olla_offset_db: float | None = None   # OLLA's SNR offset after this payload (the UE's state)
    olla_offset_start_db: float | None = None  # ... and before it (a resumed UE: its converged offset)
    arq_retransmissions: int | None = None  # RLC retransmissions (codewords re-sent after HARQ failed)
    feedback_bits: int | None = None      # reverse-link feedback: 1 HARQ ACK/NACK bit per codeword transmission,
                                          # plus an RLC STATUS PDU per round with an ARQ retransmission

    def to_dict(self) -> dict:
        return asdict(self)
