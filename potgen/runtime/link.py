"""Host side of the UART host link (:mod:`potgen.hw.host_link`, ``docs/host_link.md``).

Three layers, each usable on its own:

* frames: :func:`encode_frame` / :func:`decode_frame` and the reply payload parsers,
  built on the constants and the CRC of :mod:`potgen.hw.host_link` (one definition of
  the protocol for both ends);
* :class:`LinkClient`: stop-and-wait exchanges over a :class:`Transport`, one packet
  and its reply at a time, with sequence numbers and retransmission on a lost,
  corrupted or error reply;
* :class:`LinkBackend`: a :class:`~potgen.runtime.driver.Backend` that streams a
  :class:`~potgen.runtime.driver.Program` through the link within the credit the
  replies grant, so :class:`~potgen.runtime.driver.AcceleratorDriver` runs unchanged
  on a board (``LinkBackend(SerialTransport(port), metadata)``) or on a simulation of
  the board's pins.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass

from ..hw.host_link import (CRC_BYTES, HEADER_BYTES, INFO_BYTES, INFO_FIELDS,
                            PROTOCOL_VERSION, REPLY_FLAG, STATUS_BYTES, STATUS_FIELDS,
                            SYNC, LinkError, PacketType, StatusFlag, crc16,
                            dout_word_bytes)
from .driver import Backend, Program, RunResult

__all__ = ["Transport", "SerialTransport", "LinkClient", "LinkBackend", "LinkStatus",
           "LinkInfo", "Frame", "LinkFailure", "LinkTimeout", "encode_frame",
           "decode_frame", "parse_status", "parse_info", "ErrorCode"]

#: Error codes of ``ERROR`` replies (the gateware's enum, under the host's name).
ErrorCode = LinkError

_MAX_PAYLOAD = 0xFFFF


class LinkFailure(RuntimeError):
    """The link did not deliver a packet after every retry.

    Attributes
    ----------
    code : ErrorCode or None
        The error code of the last ``ERROR`` reply, ``None`` if the last attempt timed
        out or its reply was corrupted.
    """

    def __init__(self, message: str, code: ErrorCode | None = None):
        super().__init__(message)
        self.code = code


class LinkTimeout(LinkFailure):
    """No valid reply arrived in time, on every attempt."""


# --- frames --------------------------------------------------------------------------

@dataclass(frozen=True)
class Frame:
    """One decoded frame.

    Members
    -------
    type : int
        TYPE byte (a :class:`PacketType`, possibly ``| REPLY_FLAG``).
    seq : int
        Sequence number 0..255.
    payload : bytes
    """

    type: int
    seq: int
    payload: bytes


def encode_frame(ptype: int, seq: int, payload: bytes = b"") -> bytes:
    """``SYNC | TYPE | SEQ | LEN (LE) | PAYLOAD | CRC (BE)`` (see docs/host_link.md)."""
    for name, value in (("ptype", ptype), ("seq", seq)):
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 255:
            raise ValueError(f"{name}={value!r}: expected an int 0..255")
    payload = bytes(payload)
    if len(payload) > _MAX_PAYLOAD:
        raise ValueError(f"payload: {len(payload)} bytes; a frame carries at most "
                         f"{_MAX_PAYLOAD}")
    body = bytes([ptype, seq]) + len(payload).to_bytes(2, "little") + payload
    return bytes([SYNC]) + body + crc16(body).to_bytes(2, "big")


def decode_frame(data: bytes) -> Frame:
    """The frame in ``data`` (exactly one, starting with SYNC); ``ValueError`` if invalid."""
    data = bytes(data)
    if len(data) < HEADER_BYTES + CRC_BYTES or data[0] != SYNC:
        raise ValueError(f"frame: {data[:8].hex()}...: not a frame (too short or no SYNC)")
    length = int.from_bytes(data[3:5], "little")
    if len(data) != HEADER_BYTES + length + CRC_BYTES:
        raise ValueError(f"frame: LEN={length} but {len(data)} bytes")
    body, crc = data[1:-CRC_BYTES], int.from_bytes(data[-CRC_BYTES:], "big")
    if crc16(body) != crc:
        raise ValueError(f"frame: CRC {crc:04x}, expected {crc16(body):04x}")
    return Frame(data[1], data[2], data[HEADER_BYTES:-CRC_BYTES])


def _fields(payload: bytes, layout) -> dict:
    values, offset = {}, 0
    for name, size in layout:
        values[name] = int.from_bytes(payload[offset:offset + size], "little")
        offset += size
    return values


@dataclass(frozen=True)
class LinkStatus:
    """The status block at the start of every reply.

    Members
    -------
    busy, acc_error : bool
        The accelerator's ``busy`` and sticky ``error``.
    link_error : bool
        The link has seen a bad packet since reset (sticky).
    duplicate : bool
        The reply answers a retransmitted packet; nothing was applied again.
    cmd_free, din_free : int
        Free words in the ``cmd`` / ``din`` queues (the host's credit).
    dout_avail : int
        ``dout`` words waiting to be read.
    cycles : int
        The accelerator's 32-bit cycle counter.
    """

    busy: bool
    acc_error: bool
    link_error: bool
    duplicate: bool
    cmd_free: int
    din_free: int
    dout_avail: int
    cycles: int


def parse_status(payload: bytes) -> LinkStatus:
    """The :class:`LinkStatus` at the start of a reply payload."""
    if len(payload) < STATUS_BYTES:
        raise ValueError(f"reply payload of {len(payload)} bytes: shorter than the "
                         f"{STATUS_BYTES}-byte status")
    f = _fields(payload, STATUS_FIELDS)
    flags = StatusFlag(f["flags"] & 0x0F)
    return LinkStatus(bool(flags & StatusFlag.BUSY), bool(flags & StatusFlag.ACC_ERROR),
                      bool(flags & StatusFlag.LINK_ERROR),
                      bool(flags & StatusFlag.DUPLICATE), f["cmd_free"], f["din_free"],
                      f["dout_avail"], f["cycles"])


@dataclass(frozen=True)
class LinkInfo:
    """A ``QUERY`` reply: protocol version, link parameters and the capability blob.

    Members
    -------
    version, dout_bits, fifo_depth, baud, timeout_bits : int
    capability : bytes
        Opaque; the board top puts the accelerator's description here.
    status : LinkStatus
    """

    version: int
    dout_bits: int
    fifo_depth: int
    baud: int
    timeout_bits: int
    capability: bytes
    status: LinkStatus


def parse_info(payload: bytes) -> LinkInfo:
    """The :class:`LinkInfo` of a ``QUERY`` reply payload."""
    status = parse_status(payload)
    rest = payload[STATUS_BYTES:]
    if len(rest) < INFO_BYTES:
        raise ValueError(f"QUERY reply: {len(rest)} bytes after the status; expected "
                         f"at least {INFO_BYTES}")
    f = _fields(rest, INFO_FIELDS)
    return LinkInfo(f["version"], f["dout_bits"], f["fifo_depth"], f["baud"],
                    f["timeout_bits"], bytes(rest[INFO_BYTES:]), status)


# --- transports ----------------------------------------------------------------------

class Transport(abc.ABC):
    """A byte pipe to the link's UART pins."""

    @abc.abstractmethod
    def write(self, data: bytes) -> None:
        """Send ``data`` (all of it)."""

    @abc.abstractmethod
    def read(self, n: int, timeout: float) -> bytes:
        """Up to ``n`` bytes; fewer when ``timeout`` seconds pass first."""

    def close(self) -> None:
        """Release the port (nothing to do by default)."""


class SerialTransport(Transport):
    """A serial port through pyserial (imported when the transport is created).

    Parameters
    ----------
    port : str
        Device name (``/dev/ttyUSB0``, ``COM3``).
    baud : int
        Must equal the board link's baud rate.
    timeout : float
        Default read timeout in seconds.
    """

    def __init__(self, port: str, baud: int = 115200, timeout: float = 1.0):
        try:
            import serial
        except ImportError:
            raise ImportError("SerialTransport needs pyserial: pip install pyserial") \
                from None
        if not isinstance(port, str) or not port:
            raise ValueError(f"port={port!r}: expected a serial device name such as "
                             "/dev/ttyUSB0")
        if isinstance(baud, bool) or not isinstance(baud, int) or baud <= 0:
            raise ValueError(f"baud={baud!r}: expected a positive int")
        if not timeout > 0:
            raise ValueError(f"timeout={timeout!r}: expected seconds > 0")
        self._timeout = float(timeout)
        try:
            self._port = serial.Serial(port, baudrate=baud, bytesize=8, parity="N",
                                       stopbits=1, timeout=self._timeout)
        except serial.SerialException as error:
            raise OSError(f"port={port!r}: cannot open: {error}") from None

    def write(self, data: bytes) -> None:
        self._port.write(bytes(data))
        self._port.flush()

    def read(self, n: int, timeout: float | None = None) -> bytes:
        self._port.timeout = self._timeout if timeout is None else timeout
        return bytes(self._port.read(n))

    def close(self) -> None:
        self._port.close()


# --- exchanges -----------------------------------------------------------------------

class LinkClient:
    """Stop-and-wait exchanges with a :class:`~potgen.hw.host_link.HostLink`.

    Each :meth:`exchange` sends one packet and returns its reply; a reply that does not
    come within ``reply_timeout``, fails its CRC or is an ``ERROR`` makes the client
    discard whatever else arrives and send the same packet (same ``SEQ``) again, up to
    ``retries`` times. The link applies a repeated packet only once.

    Parameters
    ----------
    transport : Transport
    retries : int
        Retransmissions per packet before :class:`LinkFailure`.
    reply_timeout : float
        Seconds to wait for each part of a reply. Must exceed the link's
        ``timeout_bits`` at its baud rate (error replies follow an idle gap that long).
        Once the baud rate is known (``baud``, or after :meth:`query`), the line time
        of the packet sent and of the reply's payload is added.
    baud : int or None
        The link's baud rate, if known before the first ``QUERY``.

    Attributes
    ----------
    retransmissions : int
        Packets sent again so far.
    errors : dict
        ``ErrorCode`` (or ``"timeout"``, ``"corrupt"``) -> how often it was seen.
    """

    def __init__(self, transport: Transport, *, retries: int = 5, reply_timeout: float = 1.0,
                 baud: int | None = None):
        if not isinstance(transport, Transport):
            raise TypeError(f"transport: expected a potgen.runtime.link.Transport, got "
                            f"{type(transport).__name__}")
        if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
            raise ValueError(f"retries={retries!r}: expected an int >= 0")
        if not reply_timeout > 0:
            raise ValueError(f"reply_timeout={reply_timeout!r}: expected seconds > 0")
        self.transport = transport
        self.retries = retries
        self.reply_timeout = float(reply_timeout)
        if baud is not None and (isinstance(baud, bool) or not isinstance(baud, int)
                                 or baud <= 0):
            raise ValueError(f"baud={baud!r}: expected a positive int or None")
        self.baud = baud
        self.max_reply = None           # longest valid reply payload, once known
        self.retransmissions = 0
        self.errors = {}
        self._seq = 0

    def _note(self, what):
        self.errors[what] = self.errors.get(what, 0) + 1

    def _line_time(self, nbytes: int) -> float:
        """Seconds ``nbytes`` take on the line (10 bits each), 0 while the baud is unknown."""
        return 10 * nbytes / self.baud if self.baud else 0.0

    def _read_frame(self, sent: int = 0):
        """The next frame, ``None`` on a timeout, ``"corrupt"`` on a bad frame.
        ``sent``: bytes just written, which may still be on the line."""
        timeout = self.reply_timeout
        skipped = 0
        while True:
            first = self.transport.read(1, timeout + self._line_time(sent))
            if not first:
                return None
            if first[0] == SYNC:
                break
            skipped += 1
            if skipped > 1 << 16:
                return "corrupt"
        header = self.transport.read(HEADER_BYTES - 1, timeout)
        if len(header) < HEADER_BYTES - 1:
            return None
        length = int.from_bytes(header[2:4], "little")
        if self.max_reply is not None and length > self.max_reply:
            return "corrupt"            # a damaged LEN: do not wait for its bytes
        rest = self.transport.read(length + CRC_BYTES,
                                   timeout + self._line_time(length + CRC_BYTES))
        if len(rest) < length + CRC_BYTES:
            return None
        try:
            return decode_frame(bytes([SYNC]) + header + rest)
        except ValueError:
            return "corrupt"

    def _flush(self):
        quiet = self.reply_timeout / 4
        while self.transport.read(4096, quiet):
            pass

    def exchange(self, ptype: PacketType, payload: bytes = b"") -> Frame:
        """Send a packet of type ``ptype``; its reply (``ptype | REPLY_FLAG``)."""
        seq = self._seq
        frame = encode_frame(int(ptype), seq, payload)
        last = None
        for attempt in range(self.retries + 1):
            if attempt:
                self.retransmissions += 1
                self._flush()
            self.transport.write(frame)
            while True:
                reply = self._read_frame(len(frame))
                if reply is None or reply == "corrupt":
                    last = reply or "timeout"
                    self._note(last)
                    break
                if reply.type == PacketType.ERROR:
                    code = reply.payload[STATUS_BYTES] if len(reply.payload) > \
                        STATUS_BYTES else 0
                    last = ErrorCode(code) if code in ErrorCode._value2member_map_ \
                        else code
                    self._note(last)
                    break
                if reply.seq == seq and reply.type == int(ptype) | REPLY_FLAG:
                    self._seq = (seq + 1) & 0xFF
                    return reply
                # A late reply to an earlier attempt or packet: keep waiting.
        name = last.name if isinstance(last, ErrorCode) else str(last)
        message = (f"{PacketType(ptype).name} packet (SEQ {seq}) not delivered after "
                   f"{self.retries + 1} attempts; last outcome: {name}")
        if last in ("timeout", "corrupt"):
            raise LinkTimeout(message)
        raise LinkFailure(message, last if isinstance(last, ErrorCode) else None)

    def query(self) -> LinkInfo:
        """Version, link parameters and capability (also starts a session: a QUERY is
        harmless even when its SEQ collides with the link's last one)."""
        info = parse_info(self.exchange(PacketType.QUERY).payload)
        self.baud = info.baud
        self.max_reply = STATUS_BYTES + max(INFO_BYTES + len(info.capability),
                                            info.fifo_depth * dout_word_bytes(info.dout_bits),
                                            2)
        if info.version != PROTOCOL_VERSION:
            raise LinkFailure(f"the link speaks protocol version {info.version}; this "
                              f"host speaks {PROTOCOL_VERSION}")
        return info

    def status(self) -> LinkStatus:
        return parse_status(self.exchange(PacketType.STATUS).payload)

    def send_words(self, ptype: PacketType, words) -> LinkStatus:
        """Queue 32-bit words on ``cmd`` (``PacketType.CMD``) or ``din`` (``DATA``)."""
        if ptype not in (PacketType.CMD, PacketType.DATA):
            raise ValueError(f"ptype={ptype!r}: expected PacketType.CMD or DATA")
        payload = b"".join(int(w).to_bytes(4, "little") for w in words)
        return parse_status(self.exchange(ptype, payload).payload)

    def read_words(self, n: int, dout_bits: int):
        """Up to ``n`` ``dout`` words: ``(words, status)``."""
        reply = self.exchange(PacketType.READ, int(n).to_bytes(2, "little")).payload
        size = dout_word_bytes(dout_bits)
        body = reply[STATUS_BYTES:]
        if len(body) % size or len(body) // size > n:
            raise LinkFailure(f"READ reply: {len(body)} bytes of words for at most {n} "
                              f"words of {size} bytes")
        words = [int.from_bytes(body[i:i + size], "little") for i in range(0, len(body), size)]
        return words, parse_status(reply)


# --- back end ------------------------------------------------------------------------

def _dout_bits(meta: dict) -> int:
    """Width of the accelerator's ``dout`` words: from the command description, else
    from the port list."""
    bits = meta.get("commands", {}).get("data_out_bits")
    if bits is None:
        bits = next((p["width"] for p in meta.get("ports", ())
                     if p.get("name") == "dout__payload"), None)
    if bits is None:
        raise ValueError("metadata: neither commands.data_out_bits nor a dout__payload "
                         "port gives the width of the dout words")
    return int(bits)


class LinkBackend(Backend):
    """Runs :class:`~potgen.runtime.driver.Program` s on an accelerator behind a HostLink.

    Command and data words go out in ``CMD`` / ``DATA`` packets no larger than the
    credit of the last reply, ``dout`` words come back through ``READ``; both streams
    advance together (as the accelerator's own streams would), so a program never
    waits on an order of words the accelerator does not use. Each run starts with a
    ``QUERY`` (which also starts a session, see docs/host_link.md) and ends when every
    word is sent and taken, every result read, and the accelerator is idle.
    ``RunResult.cycles`` is the increase of the accelerator's cycle counter during the
    run (modulo 2**32); it includes the cycles the accelerator spent waiting for words
    from the link, so it exceeds the stall-free count of
    :meth:`~potgen.runtime.driver.AcceleratorDriver.cycles`.

    Parameters
    ----------
    transport : Transport
    metadata : dict or Accelerator
        The accelerator's ``metadata()`` (its ``dout`` width is checked against the
        link's).
    retries, reply_timeout : see :class:`LinkClient`.
    max_idle_polls : int
        ``STATUS`` polls in a row without progress before the run is abandoned with a
        ``RuntimeError`` (a hung accelerator).

    Attributes
    ----------
    client : LinkClient
    info : LinkInfo or None
        The last ``QUERY`` reply.
    packets : int
        Packets exchanged by the last :meth:`run`.
    """

    def __init__(self, transport: Transport, metadata, *, retries: int = 5,
                 reply_timeout: float = 1.0, max_idle_polls: int = 1000):
        meta = metadata
        if not isinstance(meta, dict) and callable(getattr(metadata, "metadata", None)):
            meta = metadata.metadata()
        if not isinstance(meta, dict) or meta.get("kind") != "accelerator":
            raise TypeError(f"metadata: expected an Accelerator or its metadata() dict, "
                            f"got {type(metadata).__name__}")
        if isinstance(max_idle_polls, bool) or not isinstance(max_idle_polls, int) \
                or max_idle_polls < 1:
            raise ValueError(f"max_idle_polls={max_idle_polls!r}: expected an int >= 1")
        self._dout_bits = _dout_bits(meta)
        self.client = LinkClient(transport, retries=retries, reply_timeout=reply_timeout)
        self._max_idle_polls = max_idle_polls
        self.info = None
        self.packets = 0

    def close(self) -> None:
        """Close the transport."""
        self.client.transport.close()

    def query(self) -> LinkInfo:
        """The link's version and capability (see :class:`LinkInfo`)."""
        info = self.client.query()
        if info.dout_bits != self._dout_bits:
            raise LinkFailure(f"the link carries {info.dout_bits}-bit dout words; the "
                              f"accelerator metadata says {self._dout_bits}")
        self.info = info
        return info

    def run(self, program: Program) -> RunResult:
        info = self.query()
        client, depth = self.client, info.fifo_depth
        commands, data = list(program.commands), list(program.data)
        expected = program.outputs
        start = info.status.cycles
        status = info.status
        if status.dout_avail:
            raise RuntimeError(f"the link holds {status.dout_avail} dout words from an "
                               "earlier run; reset the board")
        ci = di = 0
        out = []
        idle = 0
        self.packets = 1
        while True:
            progress = False
            if ci < len(commands) and status.cmd_free:
                n = min(status.cmd_free, len(commands) - ci, depth)
                status = client.send_words(PacketType.CMD, commands[ci:ci + n])
                ci += n
                progress = True
                self.packets += 1
            if di < len(data) and status.din_free:
                n = min(status.din_free, len(data) - di, depth)
                status = client.send_words(PacketType.DATA, data[di:di + n])
                di += n
                progress = True
                self.packets += 1
            if status.dout_avail:
                if len(out) >= expected:
                    raise RuntimeError(f"accelerator link: more than the {expected} "
                                       "expected result words")
                n = min(status.dout_avail, expected - len(out), depth)
                words, status = client.read_words(n, self._dout_bits)
                out += words
                progress = progress or bool(words)
                self.packets += 1
            sent = ci == len(commands) and di == len(data)
            drained = status.cmd_free == depth and status.din_free == depth
            if sent and drained and len(out) >= expected and not status.busy:
                break
            if progress:
                idle = 0
                continue
            if status.acc_error and not status.busy:
                break           # a refused command: the driver reports the error flag
            idle += 1
            if idle > self._max_idle_polls:
                raise RuntimeError(f"accelerator link: no progress after "
                                   f"{self._max_idle_polls} status polls ({ci}/"
                                   f"{len(commands)} commands, {di}/{len(data)} data "
                                   f"words, {len(out)}/{expected} results, busy="
                                   f"{status.busy})")
            status = client.status()
            self.packets += 1
        cycles = (status.cycles - start) & 0xFFFFFFFF
        return RunResult(out, cycles, status.acc_error)
