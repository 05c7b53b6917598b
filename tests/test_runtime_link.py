"""Host side of the link: frames, CRC, retries, and LinkBackend end to end.

The end-to-end tests run :class:`~potgen.runtime.AcceleratorDriver` through
:class:`~potgen.runtime.link.LinkBackend` over the UART pins of an Amaranth simulation
of HostLink + Accelerator, with queues smaller than the GEMM's word streams (so credit
and dout back-pressure are exercised), and compare bit for bit with
``golden.matmul`` / ``golden.requantize``; one run flips random bits in both
directions and must still be exact.
"""

from __future__ import annotations

import numpy as np
import pytest
from amaranth.hdl import Module
from hypothesis import given
from hypothesis import strategies as st
from amaranth.lib import wiring

from amaranth_sim import collect_unelaborated  # noqa: F401
from potgen import golden
from potgen.hw.accelerator import Accelerator
from potgen.hw.host_link import (REPLY_FLAG, STATUS_BYTES, SYNC, HostLink, LinkError,
                                 PacketType, crc16)
from potgen.runtime import AcceleratorDriver, Program, RequantParams
from potgen.runtime.link import (LinkBackend, LinkClient, LinkFailure, LinkTimeout,
                                 SerialTransport, Transport, decode_frame, encode_frame,
                                 parse_info, parse_status)
from test_hw_host_link import SimUartTransport

pytestmark = pytest.mark.filterwarnings("ignore::amaranth.hdl.UnusedElaboratable")

CLK = 1_000_000
BAUD = 250_000
REPLY_TIMEOUT = 3e-3


# --- frames ----------------------------------------------------------------------------

def test_crc16_check_value():
    # The catalogue check value of CRC-16/CCITT-FALSE.
    assert crc16(b"123456789") == 0x29B1
    assert crc16(b"") == 0xFFFF


def test_encode_frame_bytes():
    frame = encode_frame(PacketType.CMD, 0x11, bytes([0x41, 0x00, 0x00, 0x00]))
    body = bytes([0x03, 0x11, 0x04, 0x00, 0x41, 0x00, 0x00, 0x00])
    assert frame == bytes([SYNC]) + body + crc16(body).to_bytes(2, "big")
    assert decode_frame(frame) == decode_frame(frame)
    decoded = decode_frame(frame)
    assert (decoded.type, decoded.seq, decoded.payload) == (0x03, 0x11, body[4:])


@given(st.integers(0, 255), st.integers(0, 255), st.binary(max_size=300),
       st.data())
def test_frames_round_trip_and_every_single_bit_flip_is_caught(ptype, seq, payload, data):
    frame = encode_frame(ptype, seq, payload)
    assert len(frame) == len(payload) + 7
    assert decode_frame(frame) == decode_frame(frame)
    decoded = decode_frame(frame)
    assert (decoded.type, decoded.seq, decoded.payload) == (ptype, seq, payload)
    # CRC-16 detects every single-bit error (and LEN / SYNC checks the rest).
    bit = data.draw(st.integers(0, 8 * len(frame) - 1))
    flipped = bytearray(frame)
    flipped[bit // 8] ^= 1 << (bit % 8)
    with pytest.raises(ValueError):
        decode_frame(bytes(flipped))


def test_decode_frame_refuses_bad_frames():
    frame = encode_frame(PacketType.STATUS, 3)
    with pytest.raises(ValueError, match="CRC"):
        decode_frame(frame[:-1] + bytes([frame[-1] ^ 4]))
    with pytest.raises(ValueError, match="LEN"):
        decode_frame(frame + b"\x00")
    with pytest.raises(ValueError, match="not a frame"):
        decode_frame(b"\x00" + frame[1:])
    with pytest.raises(ValueError, match="seq=256"):
        encode_frame(PacketType.STATUS, 256)
    with pytest.raises(ValueError, match="payload"):
        encode_frame(PacketType.CMD, 0, bytes(70000))


def test_parse_status_and_info():
    status = bytes([0b1011]) + (5).to_bytes(2, "little") + (6).to_bytes(2, "little") \
        + (7).to_bytes(2, "little") + (0xFEDCBA98).to_bytes(4, "little")
    parsed = parse_status(status)
    assert (parsed.busy, parsed.acc_error, parsed.link_error, parsed.duplicate) == \
        (True, True, False, True)
    assert (parsed.cmd_free, parsed.din_free, parsed.dout_avail, parsed.cycles) == \
        (5, 6, 7, 0xFEDCBA98)
    link = HostLink(dout_bits=33, clk_freq=CLK, baud=BAUD, capability=b"\x01\x02")
    info = parse_info(status + link.info)
    assert (info.version, info.dout_bits, info.fifo_depth, info.baud, info.capability) \
        == (1, 33, 256, BAUD, b"\x01\x02")
    with pytest.raises(ValueError, match="status"):
        parse_status(status[:5])


# --- LinkClient against a scripted device ------------------------------------------------

class ScriptedTransport(Transport):
    """Answers each written frame with the next scripted reply (bytes, or None: silence)."""

    def __init__(self, replies):
        self.replies = list(replies)
        self.sent = []
        self.pending = b""

    def write(self, data):
        self.sent.append(decode_frame(data))
        reply = self.replies.pop(0) if self.replies else None
        self.pending += reply or b""

    def read(self, n, timeout):
        data, self.pending = self.pending[:n], self.pending[n:]
        return data


STATUS = bytes(STATUS_BYTES)


def _error(code, ptype, seq=0):
    return encode_frame(PacketType.ERROR, seq, STATUS + bytes([code, ptype]))


def test_client_retransmits_same_seq_after_error_corruption_and_silence():
    good = encode_frame(PacketType.STATUS | REPLY_FLAG, 0, STATUS)
    corrupted = good[:-1] + bytes([good[-1] ^ 1])
    transport = ScriptedTransport([_error(LinkError.BAD_CRC, PacketType.STATUS),
                                   corrupted, None, b"\x00\x17" + good])
    client = LinkClient(transport, retries=3, reply_timeout=0.01)
    status = client.status()
    assert status.cmd_free == 0
    assert [f.seq for f in transport.sent] == [0, 0, 0, 0]
    assert client.retransmissions == 3
    assert client.errors == {LinkError.BAD_CRC: 1, "corrupt": 1, "timeout": 1}
    # The next packet uses the next SEQ.
    transport.replies = [encode_frame(PacketType.STATUS | REPLY_FLAG, 1, STATUS)]
    client.status()
    assert transport.sent[-1].seq == 1


def test_client_skips_stale_replies():
    stale = encode_frame(PacketType.STATUS | REPLY_FLAG, 7, STATUS)
    good = encode_frame(PacketType.STATUS | REPLY_FLAG, 0, STATUS)
    transport = ScriptedTransport([stale + good])
    client = LinkClient(transport, retries=0, reply_timeout=0.01)
    client.status()
    assert client.retransmissions == 0


def test_client_gives_up_with_clear_errors():
    transport = ScriptedTransport([_error(LinkError.NO_CREDIT, PacketType.CMD)] * 3)
    client = LinkClient(transport, retries=2, reply_timeout=0.01)
    with pytest.raises(LinkFailure, match="CMD packet .*3 attempts.*NO_CREDIT") as info:
        client.send_words(PacketType.CMD, [1])
    assert info.value.code == LinkError.NO_CREDIT
    with pytest.raises(LinkTimeout, match="timeout"):
        LinkClient(ScriptedTransport([]), retries=1, reply_timeout=0.01).status()


def test_parameter_errors():
    with pytest.raises(TypeError, match="transport"):
        LinkClient(object())
    with pytest.raises(ValueError, match="retries=-1"):
        LinkClient(ScriptedTransport([]), retries=-1)
    with pytest.raises(ValueError, match="reply_timeout=0"):
        LinkClient(ScriptedTransport([]), reply_timeout=0)
    with pytest.raises(ValueError, match="baud=0"):
        LinkClient(ScriptedTransport([]), baud=0)
    with pytest.raises(TypeError, match="metadata"):
        LinkBackend(ScriptedTransport([]), {"kind": "array"})
    with pytest.raises(ValueError, match="ptype"):
        LinkClient(ScriptedTransport([])).send_words(PacketType.READ, [1])


def test_serial_transport_reports_a_missing_port():
    with pytest.raises(OSError, match="/dev/potgen-no-such-port"):
        SerialTransport("/dev/potgen-no-such-port", 115200)
    with pytest.raises(ValueError, match="port"):
        SerialTransport("", 115200)


# --- end to end: AcceleratorDriver -> LinkBackend -> UART -> HostLink -> Accelerator ------

class LinkedAccelerator(wiring.Component):
    """HostLink wired to an Accelerator, as a board top does (UART pins outside)."""

    def __init__(self, accelerator, **link_params):
        self.accelerator = accelerator
        self.link = HostLink(dout_bits=accelerator.data_out_bits, **link_params)
        super().__init__({"uart_rx": wiring.In(1, init=1), "uart_tx": wiring.Out(1)})

    def elaborate(self, platform):
        m = Module()
        m.submodules.link = link = self.link
        m.submodules.accelerator = acc = self.accelerator
        wiring.connect(m, link.cmd, acc.cmd)
        wiring.connect(m, link.din, acc.din)
        wiring.connect(m, acc.dout, link.dout)
        m.d.comb += [link.acc_busy.eq(acc.busy), link.acc_error.eq(acc.error),
                     link.acc_cycles.eq(acc.cycles),
                     link.uart_rx.eq(self.uart_rx), self.uart_tx.eq(link.uart_tx)]
        return m


class FlakyTransport(Transport):
    """Flips a random bit in a share of the frames in each direction."""

    def __init__(self, inner, rng, p_corrupt):
        self.inner, self.rng, self.p = inner, rng, p_corrupt
        self.flips = 0

    def _flip(self, data):
        data = bytearray(data)
        if data and self.rng.random() < self.p:
            data[self.rng.integers(len(data))] ^= 1 << int(self.rng.integers(8))
            self.flips += 1
        return bytes(data)

    def write(self, data):
        self.inner.write(self._flip(data))

    def read(self, n, timeout):
        return self._flip(self.inner.read(n, timeout)) if n > 1 else \
            self.inner.read(n, timeout)


def _system(rows=2, cols=2, weight="pot4", act="uint8", k_max=4, fifo_depth=8):
    acc = Accelerator(rows, cols, weight, act, k_max=k_max)
    top = LinkedAccelerator(acc, clk_freq=CLK, baud=BAUD, fifo_depth=fifo_depth,
                            timeout_bits=30, capability=b"e2e")
    transport = SimUartTransport(top, rx=top.uart_rx, tx=top.uart_tx, clk_freq=CLK,
                                 baud=BAUD)
    return acc, transport


def _operands(acc, rng, M, K, N):
    act = acc.array.act_format
    acts = rng.integers(act.min_level, act.max_level + 1, (M, K))
    codes = rng.integers(0, 1 << acc.array.column_formats[0].bits, (K, N))
    return acts, codes


def test_gemm_through_the_link_is_bit_exact():
    rng = np.random.default_rng(11)
    acc, transport = _system()
    backend = LinkBackend(transport, acc.metadata(), reply_timeout=REPLY_TIMEOUT)
    assert backend.query().capability == b"e2e"
    driver = AcceleratorDriver(acc, backend)
    acts, codes = _operands(acc, rng, 3, 4, 3)      # 36 din words, 16 dout words > 8
    result = driver.gemm(acts, codes)
    expected = golden.matmul(acts, codes, acc.array.column_formats[0],
                             golden.AccSpec(acc.acc_bits, "wrap"))
    np.testing.assert_array_equal(result.acc, expected.acc)
    np.testing.assert_array_equal(result.overflow, expected.overflow)
    # Busy cycles: at least the stall-free count (the UART is slower than the array).
    assert result.cycles >= driver.cycles(3, 4, 3)
    assert backend.client.retransmissions == 0
    assert transport.framing_errors == 0


def test_requantized_gemm_survives_bit_flips_in_both_directions():
    rng = np.random.default_rng(5)
    acc, transport = _system(rows=2, cols=3, weight="apot4", act="int4")
    flaky = FlakyTransport(transport, rng, 0.2)
    backend = LinkBackend(flaky, acc.metadata(), retries=10, reply_timeout=REPLY_TIMEOUT)
    driver = AcceleratorDriver(acc, backend)
    acts, codes = _operands(acc, rng, 2, 2, 4)
    out = acc.requantizer.out_format
    params = RequantParams(multiplier=rng.integers(1, 1 << 10, 4),
                           shift=rng.integers(0, 8, 4),
                           zero_point=rng.integers(out.min_level, out.max_level + 1, 4),
                           relu=True)
    result = driver.gemm(acts, codes, params)
    raw = golden.matmul(acts, codes, acc.array.column_formats[0],
                        golden.AccSpec(acc.acc_bits, "wrap")).acc
    expected = golden.requantize(raw, params.multiplier, params.shift,
                                 params.zero_point, lo=out.min_level, hi=out.max_level,
                                 relu=True)
    np.testing.assert_array_equal(result.acc, expected)
    assert flaky.flips > 0 and backend.client.retransmissions > 0


def test_refused_command_is_reported_as_an_error():
    acc, transport = _system()
    backend = LinkBackend(transport, acc.metadata(), reply_timeout=REPLY_TIMEOUT)
    result = backend.run(Program(commands=[0xF], data=[], outputs=0))   # opcode 15
    assert result.error and result.words == []
    with pytest.raises(RuntimeError, match="error flag"):
        AcceleratorDriver(acc, backend).gemm(np.ones((1, 1), np.int64),
                                             np.ones((1, 1), np.int64))
