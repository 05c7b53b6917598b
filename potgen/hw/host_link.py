"""Host link: the accelerator's streams behind a UART, in CRC-checked packets.

The host sends packets; the link answers every packet it receives with exactly one
reply. The full description, with a byte-level example, is in ``docs/host_link.md``;
the host side is :mod:`potgen.runtime.link`, which takes every constant below from
this module, so the two ends cannot disagree.

Frame (both directions; multi-byte fields little-endian except the CRC)::

    SYNC (0xA5) | TYPE | SEQ | LEN lo | LEN hi | PAYLOAD (LEN bytes) | CRC hi | CRC lo

``CRC`` is CRC-16/CCITT-FALSE (polynomial 0x1021, initial value 0xFFFF, no reflection,
no final XOR; ``crc16(b"123456789") == 0x29B1``) over TYPE, SEQ, LEN and PAYLOAD.

Host packets: ``QUERY`` and ``STATUS`` (no payload), ``CMD`` / ``DATA`` (``4 n`` bytes:
``n`` 32-bit words for the ``cmd`` / ``din`` stream), ``READ`` (2 bytes: the most
``dout`` words wanted). A reply has ``TYPE | 0x80`` and the packet's ``SEQ``; its
payload starts with the 11-byte status (:data:`STATUS_FIELDS`), followed by the
version and capability (``QUERY``) or the ``dout`` words (``READ``,
``ceil(dout_bits / 8)`` bytes each). A bad packet gets an ``ERROR`` (0xFF) reply:
status, error code (:class:`LinkError`), the packet's type (0 if unknown).

Nothing is half-applied: ``CMD`` / ``DATA`` words are written into the free part of
their queue (a ``lib.memory`` ring buffer), behind its committed end, and the end moves
over them only once the CRC has matched; until then the accelerator cannot see them.

Flow control and deadlock freedom: every reply carries the free space of the ``cmd``
and ``din`` queues and the number of ``dout`` words waiting; the host sends no more
words than fit (a packet that does not fit is refused whole with ``NO_CREDIT``). The
receiver never waits for the accelerator: queued words reach ``cmd`` / ``din`` on
their own, and ``dout`` words go into a third queue. So whatever state the accelerator
is in (stalled on a full ``dout`` queue, or waiting for ``din`` words), the link keeps
answering ``STATUS`` and ``READ``; a ``READ`` frees ``dout`` space, which lets a
stalled drain continue, which lets the accelerator take the words it is waiting for.
The only waits are the accelerator's own, on words the host can always supply or take.

Retransmission: the host repeats a packet, with the same ``SEQ``, when its reply is
lost or an error reply comes back. A packet whose ``SEQ`` equals that of the last
packet the link accepted is a duplicate: its words are not queued again (its reply has
the ``duplicate`` status flag), and a duplicate ``READ`` sends the same words again.
Words sent in a ``READ`` reply leave the ``dout`` queue only when the next packet with
a new ``SEQ`` arrives, which tells the link that the host has the reply.

Errors: a packet with an unknown type or a length its type does not allow, a UART
framing error, a byte outside a frame, or a CRC mismatch makes the link discard every
byte until the line has been idle for ``timeout_bits`` bit times, then send one
``ERROR`` reply; a packet cut short (the line idle for ``timeout_bits`` bit times
inside a frame) gets its ``TRUNCATED`` reply at once. Either way the link is ready for
the next packet, and the sticky ``link_error`` output is set.
"""

from __future__ import annotations

import enum
import math

from amaranth.hdl import Cat, Const, Module, Mux, Signal, unsigned
from amaranth.lib import stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from .checks import check_int
from .uart import UartRx, UartTx, clocks_per_bit

__all__ = ["HostLink", "PacketType", "LinkError", "SYNC", "PROTOCOL_VERSION",
           "REPLY_FLAG", "STATUS_FIELDS", "STATUS_BYTES", "INFO_FIELDS", "INFO_BYTES",
           "HEADER_BYTES", "CRC_BYTES", "MAX_CAPABILITY_BYTES", "crc16",
           "StatusFlag", "dout_word_bytes"]

#: First byte of every frame.
SYNC = 0xA5
#: Version of the protocol described here (first byte after the status in a QUERY reply).
PROTOCOL_VERSION = 1
#: Set in the TYPE of a reply to a packet of that type.
REPLY_FLAG = 0x80
#: SYNC, TYPE, SEQ, LEN (2 bytes).
HEADER_BYTES = 5
CRC_BYTES = 2
#: Longest capability blob accepted.
MAX_CAPABILITY_BYTES = 1024
#: Largest ``dout_bits`` accepted.
MAX_DOUT_BITS = 64
#: Queue depths accepted: powers of two in this range.
MIN_FIFO_DEPTH, MAX_FIFO_DEPTH = 4, 4096


class PacketType(enum.IntEnum):
    """TYPE byte of a host packet (a reply has ``TYPE | REPLY_FLAG``, or ``ERROR``)."""
    QUERY = 0x01    #: no payload; reply: status, then INFO_FIELDS, then the capability
    STATUS = 0x02   #: no payload; reply: status
    CMD = 0x03      #: n 32-bit words for the cmd stream; reply: status
    DATA = 0x04     #: n 32-bit words for the din stream; reply: status
    READ = 0x05     #: u16, the most dout words wanted; reply: status, then the words
    ERROR = 0xFF    #: reply only: status, error code, the packet's TYPE


class LinkError(enum.IntEnum):
    """Error code of an ``ERROR`` reply."""
    BAD_CRC = 1         #: the CRC did not match
    BAD_LENGTH = 2      #: LEN not allowed for the type (see docs/host_link.md)
    UNKNOWN_TYPE = 3    #: TYPE is not a host packet type
    TRUNCATED = 4       #: the line went idle inside a frame
    NO_CREDIT = 5       #: more words than the queue has room for
    FRAMING = 6         #: a UART framing error (stop bit 0)
    GARBAGE = 7         #: bytes outside a frame (not SYNC, or sent during a reply)


class StatusFlag(enum.IntFlag):
    """Bits of the status ``flags`` byte."""
    BUSY = 1            #: the accelerator's ``busy``
    ACC_ERROR = 2       #: the accelerator's sticky ``error``
    LINK_ERROR = 4      #: the link's sticky ``link_error``
    DUPLICATE = 8       #: this reply answers a retransmission; nothing was applied


#: The status block that starts every reply payload: (name, bytes), little-endian.
STATUS_FIELDS = (("flags", 1), ("cmd_free", 2), ("din_free", 2), ("dout_avail", 2),
                 ("cycles", 4))
STATUS_BYTES = sum(n for _, n in STATUS_FIELDS)
#: Fields of a QUERY reply after the status, then the capability blob to the end.
INFO_FIELDS = (("version", 1), ("dout_bits", 1), ("fifo_depth", 2), ("baud", 4),
               ("timeout_bits", 2))
INFO_BYTES = sum(n for _, n in INFO_FIELDS)

_CRC_POLY = 0x1021


def crc16(data: bytes, crc: int = 0xFFFF) -> int:
    """CRC-16/CCITT-FALSE of ``data`` (start from ``crc`` to continue a running CRC)."""
    for byte in data:
        crc ^= byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ _CRC_POLY if crc & 0x8000 else crc << 1) & 0xFFFF
    return crc


def dout_word_bytes(dout_bits: int) -> int:
    """Bytes per ``dout`` word in a READ reply."""
    return (dout_bits + 7) // 8


def _crc_byte(crc: int, byte: int) -> int:
    return crc16(bytes([byte]), crc)


def _crc_taps():
    """For each output bit of one CRC byte step, the state bits and byte bits it XORs.

    The step is linear over GF(2) (no initial value or final XOR inside it), so each
    output bit is the XOR of the inputs whose unit vector sets it."""
    taps = []
    for out_bit in range(16):
        state = [i for i in range(16) if _crc_byte(1 << i, 0) >> out_bit & 1]
        data = [i for i in range(8) if _crc_byte(0, 1 << i) >> out_bit & 1]
        taps.append((state, data))
    return taps


_CRC_TAPS = _crc_taps()


def _crc_step(crc, byte):
    """The gateware CRC update: one byte per clock, as flat XORs of input bits."""
    bits = []
    for state, data in _CRC_TAPS:
        terms = [crc[i] for i in state] + [byte[i] for i in data]
        value = terms[0]
        for term in terms[1:]:
            value = value ^ term
        bits.append(value)
    return Cat(*bits)


def _select_byte(m, target, value, index):
    """``target = byte index of value``, as a case per byte (a variable shift would
    be wider than its result in the emitted Verilog)."""
    with m.Switch(index):
        for i in range(len(value) // 8):
            with m.Case(i):
                m.d.comb += target.eq(value[8 * i:8 * i + 8])


def _u16(value):
    """``value`` zero-extended to a 16-bit status field."""
    return Cat(value, Const(0, 16 - len(value)))


class _Queue:
    """Pointers of a power-of-two ring buffer; one extra bit tells full from empty."""

    def __init__(self, name, depth):
        self.depth = depth
        self.index_bits = depth.bit_length() - 1
        self.head = Signal(self.index_bits + 1, name=f"{name}_head")
        self.tail = Signal(self.index_bits + 1, name=f"{name}_tail")

    def used(self):
        return (self.head - self.tail)[:self.index_bits + 1]

    def free(self):
        return (self.depth - self.used())[:self.index_bits + 1]

    def index(self, pointer):
        return pointer[:self.index_bits]


class HostLink(wiring.Component):
    """UART packet link between a host and an accelerator's streams.

    Parameters
    ----------
    dout_bits : int
        Width of the accelerator's ``dout`` words, 1..64.
    clk_freq : int or float
        ``sync`` clock frequency in Hz.
    baud : int or float
        UART line rate (see :func:`potgen.hw.uart.clocks_per_bit`).
    capability : bytes
        Opaque blob returned by ``QUERY`` after the version (at most
        :data:`MAX_CAPABILITY_BYTES`).
    fifo_depth : int
        Depth in words of each of the three queues (``cmd``, ``din``, ``dout``): a power
        of two, 4..4096. A ``CMD`` / ``DATA`` packet carries at most this many words.
    timeout_bits : int
        Line idle time, in bit times, that ends a frame early (``TRUNCATED``) or ends
        the discarding after an error; 20..65535. It must exceed any gap the host's
        serial adapter leaves between the bytes of one frame.

    Members
    -------
    uart_rx : ``In(1, init=1)``
        Serial input pin (idles high).
    uart_tx : ``Out(1, init=1)``
        Serial output pin.
    cmd : ``Out(stream.Signature(32))``
        Command words to the accelerator.
    din : ``Out(stream.Signature(32))``
        Data words to the accelerator.
    dout : ``In(stream.Signature(dout_bits))``
        Result words from the accelerator.
    acc_busy, acc_error : ``In(1)``
        The accelerator's ``busy`` and sticky ``error``, reported in every reply.
    acc_cycles : ``In(32)``
        The accelerator's cycle counter, reported in every reply.
    link_error : ``Out(1)``
        Sticky: a bad packet was seen.
    activity : ``Out(1)``
        High for about 50 ms after any byte in either direction (for an LED).

    Attributes
    ----------
    clocks_per_bit : int
    word_bytes : int
        Bytes per ``dout`` word in a ``READ`` reply.
    info : bytes
        The QUERY reply payload after the status: :data:`INFO_FIELDS`, then the
        capability.
    max_read_words : int
        Most ``dout`` words one ``READ`` reply can carry.
    """

    def __init__(self, *, dout_bits, clk_freq, baud=115200, capability=b"",
                 fifo_depth=256, timeout_bits=2000):
        self._dout_bits = check_int(dout_bits, "dout_bits", 1, MAX_DOUT_BITS,
                                    "width of the accelerator's dout words")
        self._cpb = clocks_per_bit(clk_freq, baud)
        self._clk_freq = clk_freq
        self._baud = baud
        if not isinstance(capability, (bytes, bytearray)):
            raise TypeError(f"capability={capability!r}: expected bytes")
        if len(capability) > MAX_CAPABILITY_BYTES:
            raise ValueError(f"capability: {len(capability)} bytes; at most "
                             f"{MAX_CAPABILITY_BYTES} are allowed")
        self._capability = bytes(capability)
        self._fifo_depth = check_int(fifo_depth, "fifo_depth", MIN_FIFO_DEPTH,
                                     MAX_FIFO_DEPTH, "words per queue, a power of two")
        if self._fifo_depth & (self._fifo_depth - 1):
            raise ValueError(f"fifo_depth={fifo_depth}: must be a power of two "
                             f"({MIN_FIFO_DEPTH}..{MAX_FIFO_DEPTH})")
        self._timeout_bits = check_int(timeout_bits, "timeout_bits", 20, 0xFFFF,
                                       "idle bit times that end a frame")
        if round(baud) >= 1 << 32:
            raise ValueError(f"baud={baud}: must be below 2**32")
        super().__init__({
            "uart_rx": In(1, init=1),
            "uart_tx": Out(1, init=1),
            "cmd": Out(stream.Signature(unsigned(32))),
            "din": Out(stream.Signature(unsigned(32))),
            "dout": In(stream.Signature(unsigned(self._dout_bits))),
            "acc_busy": In(1),
            "acc_error": In(1),
            "acc_cycles": In(32),
            "link_error": Out(1),
            "activity": Out(1),
        })

    @property
    def dout_bits(self) -> int:
        return self._dout_bits

    @property
    def clocks_per_bit(self) -> int:
        return self._cpb

    @property
    def fifo_depth(self) -> int:
        return self._fifo_depth

    @property
    def timeout_bits(self) -> int:
        return self._timeout_bits

    @property
    def word_bytes(self) -> int:
        return dout_word_bytes(self._dout_bits)

    @property
    def max_read_words(self) -> int:
        return self._fifo_depth

    @property
    def info(self) -> bytes:
        values = {"version": PROTOCOL_VERSION, "dout_bits": self._dout_bits,
                  "fifo_depth": self._fifo_depth, "baud": round(self._baud),
                  "timeout_bits": self._timeout_bits}
        return b"".join(values[name].to_bytes(n, "little") for name, n in INFO_FIELDS) \
            + self._capability

    def metadata(self) -> dict:
        """Parameters and protocol constants (JSON-serialisable)."""
        from .export import signature_ports
        return {
            "kind": "host_link",
            "protocol_version": PROTOCOL_VERSION,
            "dout_bits": self._dout_bits,
            "clk_freq": self._clk_freq,
            "baud": self._baud,
            "clocks_per_bit": self._cpb,
            "fifo_depth": self._fifo_depth,
            "timeout_bits": self._timeout_bits,
            "capability_bytes": len(self._capability),
            "ports": signature_ports(self),
        }

    def elaborate(self, platform):
        m = Module()
        depth = self._fifo_depth
        word_bytes = self.word_bytes
        info = self.info

        m.submodules.uart_rx = uart_rx = UartRx(clk_freq=self._clk_freq, baud=self._baud)
        m.submodules.uart_tx = uart_tx = UartTx(clk_freq=self._clk_freq, baud=self._baud)
        m.d.comb += [uart_rx.rx.eq(self.uart_rx), self.uart_tx.eq(uart_tx.tx)]

        # --- queues ---
        cmd_q, din_q, out_q = _Queue("cmd", depth), _Queue("din", depth), _Queue("dout", depth)
        m.submodules.cmd_queue = cmd_mem = Memory(shape=unsigned(32), depth=depth, init=[])
        m.submodules.din_queue = din_mem = Memory(shape=unsigned(32), depth=depth, init=[])
        m.submodules.dout_queue = out_mem = Memory(shape=unsigned(self._dout_bits),
                                                   depth=depth, init=[])
        m.submodules.info_rom = info_rom = Memory(shape=unsigned(8), depth=len(info),
                                                  init=list(info))
        cmd_write, din_write = cmd_mem.write_port(), din_mem.write_port()
        out_write = out_mem.write_port()
        out_read, info_read = out_mem.read_port(), info_rom.read_port()

        # cmd / din: the word at the tail is on the stream; on a pop the read port
        # already fetches the next one, so a word can leave every cycle.
        for queue, mem, port in ((cmd_q, cmd_mem, self.cmd), (din_q, din_mem, self.din)):
            read = mem.read_port()
            pop = port.valid & port.ready
            m.d.comb += [port.valid.eq(queue.used() != 0), port.payload.eq(read.data),
                         read.addr.eq(queue.index(Mux(pop, queue.tail + 1, queue.tail)))]
            with m.If(pop):
                m.d.sync += queue.tail.eq(queue.tail + 1)

        # dout: accepted while there is room; words stay until a READ is acknowledged.
        pending = Signal(range(depth + 1))      # words sent in the last READ reply
        m.d.comb += [self.dout.ready.eq(out_q.used() != depth),
                     out_write.addr.eq(out_q.index(out_q.head)),
                     out_write.data.eq(self.dout.payload),
                     out_write.en.eq(self.dout.valid & self.dout.ready)]
        with m.If(self.dout.valid & self.dout.ready):
            m.d.sync += out_q.head.eq(out_q.head + 1)

        # --- receiver ---
        rx_byte = uart_rx.bytes.payload.data
        rx_framing = uart_rx.bytes.payload.framing_error
        rx_take = uart_rx.bytes.valid
        m.d.comb += uart_rx.bytes.ready.eq(1)

        timeout = self._timeout_bits * self._cpb
        idle = Signal(range(timeout + 1))
        idle_expired = idle == timeout
        with m.If(rx_take):
            m.d.sync += idle.eq(0)
        with m.Elif(~idle_expired):
            m.d.sync += idle.eq(idle + 1)

        pkt_type = Signal(8)
        pkt_seq = Signal(8)
        pkt_len = Signal(16)
        count = Signal(16)                      # payload bytes received
        crc = Signal(16)
        crc_hi = Signal(8)
        word = Signal(24)                       # first three bytes of a payload word
        read_request = Signal(16)
        duplicate = Signal()
        is_cmd = pkt_type == PacketType.CMD
        error_code = Signal(8)
        error_type = Signal(8)
        last_seq = Signal(8)
        last_valid = Signal()

        # Reply request to the transmitter.
        tx_start = Signal()
        tx_busy = Signal()
        reply_error = Signal()

        new_crc = _crc_step(crc, rx_byte)
        header_len = Cat(pkt_len[:8], rx_byte)
        words = header_len[2:]
        # Free space, registered to keep the subtraction out of the receiver's paths.
        # It can only be low by the words popped in the last cycle: a safe credit.
        cmd_free = Signal(cmd_q.index_bits + 1, init=depth)
        din_free = Signal(din_q.index_bits + 1, init=depth)
        m.d.sync += [cmd_free.eq(cmd_q.free()), din_free.eq(din_q.free())]
        target_free = Mux(is_cmd, cmd_free, din_free)

        def fail(code):
            m.d.sync += [error_code.eq(code), self.link_error.eq(1)]
            m.next = "DISCARD"

        payload_index = count[2:]
        write_data = Cat(word, rx_byte)
        write_word = Signal()
        for queue, port, kind in ((cmd_q, cmd_write, PacketType.CMD),
                                  (din_q, din_write, PacketType.DATA)):
            m.d.comb += [port.addr.eq(queue.index(queue.head + payload_index)),
                         port.data.eq(write_data),
                         port.en.eq(write_word & (pkt_type == kind))]

        with m.FSM(name="rx_fsm"):
            with m.State("HUNT"):
                with m.If(rx_take):
                    m.d.sync += [count.eq(0), crc.eq(0xFFFF), error_type.eq(0),
                                 pkt_seq.eq(0)]
                    with m.If(rx_framing):
                        fail(LinkError.FRAMING)
                    with m.Elif(rx_byte == SYNC):
                        m.next = "TYPE"
                    with m.Else():
                        fail(LinkError.GARBAGE)

            # Header bytes: TYPE, SEQ, LEN lo, LEN hi.
            for state, target, following in (("TYPE", pkt_type, "SEQ"),
                                              ("SEQ", pkt_seq, "LEN_LO"),
                                              ("LEN_LO", pkt_len[:8], "LEN_HI")):
                with m.State(state):
                    with m.If(rx_take):
                        with m.If(rx_framing):
                            fail(LinkError.FRAMING)
                        with m.Else():
                            m.d.sync += [target.eq(rx_byte), crc.eq(new_crc)]
                            if state == "TYPE":
                                m.d.sync += error_type.eq(rx_byte)
                            m.next = following
                    with m.Elif(idle_expired):
                        m.d.sync += [error_code.eq(LinkError.TRUNCATED),
                                     self.link_error.eq(1)]
                        m.next = "REPLY_ERROR"

            with m.State("LEN_HI"):
                with m.If(rx_take):
                    m.d.sync += [pkt_len.eq(header_len), crc.eq(new_crc),
                                 duplicate.eq(last_valid & (pkt_seq == last_seq))]
                    with m.If(rx_framing):
                        fail(LinkError.FRAMING)
                    with m.Elif((pkt_type == PacketType.QUERY) |
                                (pkt_type == PacketType.STATUS)):
                        with m.If(header_len == 0):
                            m.next = "CRC_HI"
                        with m.Else():
                            fail(LinkError.BAD_LENGTH)
                    with m.Elif(pkt_type == PacketType.READ):
                        with m.If(header_len == 2):
                            m.next = "PAYLOAD"
                        with m.Else():
                            fail(LinkError.BAD_LENGTH)
                    with m.Elif((pkt_type == PacketType.CMD) |
                                (pkt_type == PacketType.DATA)):
                        with m.If((header_len[:2] != 0) | (words == 0) |
                                  (words > depth)):
                            fail(LinkError.BAD_LENGTH)
                        with m.Elif(~(last_valid & (pkt_seq == last_seq)) &
                                    (words > target_free)):
                            fail(LinkError.NO_CREDIT)
                        with m.Else():
                            m.next = "PAYLOAD"
                    with m.Else():
                        fail(LinkError.UNKNOWN_TYPE)
                with m.Elif(idle_expired):
                    m.d.sync += [error_code.eq(LinkError.TRUNCATED), self.link_error.eq(1)]
                    m.next = "REPLY_ERROR"

            with m.State("PAYLOAD"):
                with m.If(rx_take):
                    with m.If(rx_framing):
                        fail(LinkError.FRAMING)
                    with m.Else():
                        m.d.sync += [crc.eq(new_crc), count.eq(count + 1),
                                     word.eq(Cat(word[8:], rx_byte)),
                                     read_request.eq(Cat(read_request[8:], rx_byte))]
                        # A duplicate's words are already queued: check, do not write.
                        m.d.comb += write_word.eq((count[:2] == 3) & ~duplicate)
                        with m.If(count == pkt_len - 1):
                            m.next = "CRC_HI"
                with m.Elif(idle_expired):
                    m.d.sync += [error_code.eq(LinkError.TRUNCATED), self.link_error.eq(1)]
                    m.next = "REPLY_ERROR"

            with m.State("CRC_HI"):
                with m.If(rx_take):
                    m.d.sync += crc_hi.eq(rx_byte)
                    with m.If(rx_framing):
                        fail(LinkError.FRAMING)
                    with m.Else():
                        m.next = "CRC_LO"
                with m.Elif(idle_expired):
                    m.d.sync += [error_code.eq(LinkError.TRUNCATED), self.link_error.eq(1)]
                    m.next = "REPLY_ERROR"

            with m.State("CRC_LO"):
                with m.If(rx_take):
                    with m.If(rx_framing):
                        fail(LinkError.FRAMING)
                    with m.Elif(Cat(rx_byte, crc_hi) != crc):
                        fail(LinkError.BAD_CRC)
                    with m.Else():
                        m.next = "ACCEPT"
                with m.Elif(idle_expired):
                    m.d.sync += [error_code.eq(LinkError.TRUNCATED), self.link_error.eq(1)]
                    m.next = "REPLY_ERROR"

            with m.State("ACCEPT"):
                # A new SEQ acknowledges the previous reply: its dout words are gone.
                with m.If(~duplicate):
                    m.d.sync += [out_q.tail.eq(out_q.tail + pending), pending.eq(0),
                                 last_seq.eq(pkt_seq), last_valid.eq(1)]
                    with m.If(is_cmd):
                        m.d.sync += cmd_q.head.eq(cmd_q.head + pkt_len[2:])
                    with m.If(pkt_type == PacketType.DATA):
                        m.d.sync += din_q.head.eq(din_q.head + pkt_len[2:])
                m.next = "APPLY_READ"

            with m.State("APPLY_READ"):
                with m.If((pkt_type == PacketType.READ) & ~duplicate):
                    available = out_q.used()
                    m.d.sync += pending.eq(Mux(read_request < available, read_request,
                                               available))
                m.d.sync += reply_error.eq(0)
                m.next = "REPLY"

            with m.State("REPLY_ERROR"):
                m.d.sync += [reply_error.eq(1), duplicate.eq(0)]
                m.next = "REPLY"

            with m.State("REPLY"):
                m.d.comb += tx_start.eq(1)
                m.next = "REPLY_WAIT"

            with m.State("REPLY_WAIT"):
                # The host waits for the reply before sending: bytes now are garbage.
                with m.If(rx_take):
                    m.d.sync += self.link_error.eq(1)
                    m.next = "REPLY_DISCARD"
                with m.Elif(~tx_start & ~tx_busy):
                    m.next = "HUNT"

            with m.State("REPLY_DISCARD"):
                # The reply going out reads SEQ and the error code: change them after it.
                with m.If(~tx_busy):
                    m.d.sync += [error_code.eq(LinkError.GARBAGE), error_type.eq(0),
                                 pkt_seq.eq(0)]
                    m.next = "DISCARD"

            with m.State("DISCARD"):
                with m.If(idle_expired & ~rx_take):
                    m.next = "REPLY_ERROR"

        # --- transmitter ---
        reply_type = Mux(reply_error, PacketType.ERROR, pkt_type | REPLY_FLAG)
        status = Signal(8 * STATUS_BYTES)
        kind = Signal(range(4))                         # after the status: nothing,
        KIND_NONE, KIND_INFO, KIND_WORDS, KIND_ERROR = range(4)   # info, words, error
        reply_len = Signal(16)
        tx_crc = Signal(16)
        pos = Signal(16)
        word_index = Signal(range(depth + 1))
        byte_index = Signal(range(max(word_bytes, 2)))
        # After each byte: a cycle for the memory read of the next one, a cycle to
        # register the read data, a cycle to register the byte chosen from it (the
        # block RAM's slow output stays out of the byte multiplexer and the CRC).
        settle = Signal(range(4))
        byte = Signal(8)
        tx_byte = Signal(8)
        sending = Signal()
        in_crc = Signal()

        flags = Cat(self.acc_busy, self.acc_error, self.link_error, duplicate,
                    Const(0, 4))
        out_avail = (out_q.used() - pending)[:out_q.index_bits + 1]

        m.d.comb += [out_read.addr.eq(out_q.index(out_q.tail + word_index)),
                     info_read.addr.eq(pos)]
        padded = Signal(8 * word_bytes)
        info_byte = Signal(8)
        header = Cat(reply_type, pkt_seq, reply_len)
        error_info = Cat(error_code, error_type)

        m.d.comb += [uart_tx.bytes.payload.eq(tx_byte),
                     uart_tx.bytes.valid.eq(sending & (settle == 0))]
        taken = uart_tx.bytes.valid & uart_tx.bytes.ready
        with m.If(settle != 0):
            m.d.sync += settle.eq(settle - 1)
        with m.If(settle == 2):
            m.d.sync += [padded.eq(out_read.data), info_byte.eq(info_read.data)]
        with m.If(settle == 1):
            m.d.sync += tx_byte.eq(byte)
        with m.If(taken):
            m.d.sync += [settle.eq(3), pos.eq(pos + 1)]
            with m.If(~in_crc):
                m.d.sync += tx_crc.eq(_crc_step(tx_crc, tx_byte))

        def next_segment(state):
            m.d.sync += pos.eq(0)
            m.next = state

        with m.FSM(name="tx_fsm"):
            with m.State("IDLE"):
                with m.If(tx_start):
                    m.d.sync += [
                        status.eq(Cat(flags, _u16(cmd_free), _u16(din_free),
                                      _u16(out_avail), self.acc_cycles)),
                        tx_crc.eq(0xFFFF), word_index.eq(0), byte_index.eq(0),
                        settle.eq(3),
                    ]
                    with m.If(reply_error):
                        m.d.sync += [kind.eq(KIND_ERROR), reply_len.eq(STATUS_BYTES + 2)]
                    with m.Elif(pkt_type == PacketType.QUERY):
                        m.d.sync += [kind.eq(KIND_INFO),
                                     reply_len.eq(STATUS_BYTES + len(info))]
                    with m.Elif((pkt_type == PacketType.READ) & (pending != 0)):
                        m.d.sync += [kind.eq(KIND_WORDS),
                                     reply_len.eq(STATUS_BYTES + pending * word_bytes)]
                    with m.Else():
                        m.d.sync += [kind.eq(KIND_NONE), reply_len.eq(STATUS_BYTES)]
                    next_segment("SYNC")
            with m.State("SYNC"):
                m.d.comb += [sending.eq(1), byte.eq(SYNC)]
                with m.If(taken):
                    m.d.sync += tx_crc.eq(0xFFFF)       # the CRC starts after SYNC
                    next_segment("HEADER")
            with m.State("HEADER"):
                m.d.comb += sending.eq(1)
                _select_byte(m, byte, header, pos[:2])
                with m.If(taken & (pos == 3)):
                    next_segment("STATUS")
            with m.State("STATUS"):
                m.d.comb += sending.eq(1)
                _select_byte(m, byte, status, pos[:4])
                with m.If(taken & (pos == STATUS_BYTES - 1)):
                    with m.Switch(kind):
                        with m.Case(KIND_INFO):
                            next_segment("INFO")
                        with m.Case(KIND_WORDS):
                            next_segment("WORDS")
                        with m.Case(KIND_ERROR):
                            next_segment("ERROR_INFO")
                        with m.Default():
                            next_segment("CRC")
            with m.State("INFO"):
                m.d.comb += [sending.eq(1), byte.eq(info_byte)]
                with m.If(taken & (pos == len(info) - 1)):
                    next_segment("CRC")
            with m.State("WORDS"):
                m.d.comb += sending.eq(1)
                _select_byte(m, byte, padded, byte_index)
                with m.If(taken):
                    with m.If(byte_index == word_bytes - 1):
                        m.d.sync += [byte_index.eq(0), word_index.eq(word_index + 1)]
                        with m.If(word_index == pending - 1):
                            next_segment("CRC")
                    with m.Else():
                        m.d.sync += byte_index.eq(byte_index + 1)
            with m.State("ERROR_INFO"):
                m.d.comb += sending.eq(1)
                _select_byte(m, byte, error_info, pos[0])
                with m.If(taken & (pos == 1)):
                    next_segment("CRC")
            with m.State("CRC"):
                m.d.comb += [sending.eq(1), in_crc.eq(1),
                             byte.eq(Mux(pos[0], tx_crc[:8], tx_crc[8:]))]
                with m.If(taken & (pos == 1)):
                    m.next = "IDLE"
            m.d.comb += tx_busy.eq(sending)

        # --- activity LED: stretched so that a single byte is visible ---
        stretch = max(1, math.ceil(self._clk_freq / 20))
        lit = Signal(range(stretch + 1))
        with m.If(rx_take | taken):
            m.d.sync += lit.eq(stretch)
        with m.Elif(lit != 0):
            m.d.sync += lit.eq(lit - 1)
        m.d.comb += self.activity.eq(lit != 0)
        return m
