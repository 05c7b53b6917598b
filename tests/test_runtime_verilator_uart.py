"""The pin-level serial model (potgen.runtime.serial_model) against hand-written UARTs."""

import pytest

from potgen.runtime import serial_model
from potgen.runtime.link import Transport
from potgen.runtime.serial_model import VerilatorUartTransport, bit_cycles

pytestmark = pytest.mark.verilator

# 1 MHz clock, 125 kbit/s: 8 cycles per bit keeps frames short in simulated time.
CLK = 1_000_000
BAUD = 125_000
DIV = 8

LOOPBACK = """
module loopback(clk, rst, uart_rx, uart_tx);
  input clk; input rst; input uart_rx;
  output reg uart_tx = 1'b1;
  always @(posedge clk) uart_tx <= rst ? 1'b1 : uart_rx;
endmodule
"""

# A UART of its own (mid-bit sampling, one byte buffer) that answers each byte with
# byte + 1, so that an echo through the model is not a wire.
ECHO = f"""
module echo(clk, rst, uart_rx, uart_tx, received);
  input clk; input rst; input uart_rx;
  output reg uart_tx = 1'b1;
  output reg [7:0] received = 0;
  localparam DIV = {DIV};
  reg rx_busy = 0; reg [15:0] rx_cnt = 0; reg [3:0] rx_bit = 0; reg [7:0] rx_shift = 0;
  reg have = 0; reg [7:0] data = 0;
  reg tx_busy = 0; reg [15:0] tx_cnt = 0; reg [3:0] tx_bit = 0; reg [9:0] tx_frame = 0;
  always @(posedge clk) begin
    if (rst) begin
      rx_busy <= 0; tx_busy <= 0; have <= 0; uart_tx <= 1'b1; received <= 0;
    end else begin
      if (!rx_busy) begin
        if (!uart_rx) begin rx_busy <= 1; rx_cnt <= DIV / 2 - 1; rx_bit <= 0; end
      end else if (rx_cnt == 0) begin
        rx_cnt <= DIV - 1;
        rx_bit <= rx_bit + 1;
        if (rx_bit == 0) begin
          if (uart_rx) rx_busy <= 0;
        end else if (rx_bit <= 8) begin
          rx_shift <= {{uart_rx, rx_shift[7:1]}};
        end else begin
          rx_busy <= 0;
          if (uart_rx) begin have <= 1; data <= rx_shift + 8'd1; received <= received + 1; end
        end
      end else rx_cnt <= rx_cnt - 1;
      if (!tx_busy && have) begin
        tx_busy <= 1; have <= 0; tx_frame <= {{1'b1, data, 1'b0}};
        tx_cnt <= DIV - 1; tx_bit <= 0; uart_tx <= 1'b0;
      end else if (tx_busy) begin
        if (tx_cnt == 0) begin
          tx_cnt <= DIV - 1;
          if (tx_bit == 9) begin tx_busy <= 0; uart_tx <= 1'b1; end
          else begin uart_tx <= tx_frame[tx_bit + 1]; tx_bit <= tx_bit + 1; end
        end else tx_cnt <= tx_cnt - 1;
      end
    end
  end
endmodule
"""


def _frame(byte, stop=1):
    return [0] + [(byte >> i) & 1 for i in range(8)] + [stop]


# Sends a fixed bit pattern once after reset: 0x55, a frame of 0xF0 whose stop bit is
# low, idle, then 0xA3. The model must deliver 0x55 and 0xA3 and count one framing error.
_PATTERN = [1, 1] + _frame(0x55) + [1] + _frame(0xF0, stop=0) + [1, 1] + _frame(0xA3) + [1]
PATTERN = f"""
module pattern(clk, rst, uart_rx, uart_tx);
  input clk; input rst; input uart_rx;
  output uart_tx;
  localparam N = {len(_PATTERN)};
  wire [N-1:0] bits = {len(_PATTERN)}'b{''.join(str(b) for b in reversed(_PATTERN))};
  reg [15:0] cnt = 0; reg [7:0] index = 0;
  assign uart_tx = index < N ? bits[index] : 1'b1;
  always @(posedge clk) begin
    if (rst) begin cnt <= 0; index <= 0; end
    else if (cnt == {DIV} - 1) begin cnt <= 0; if (index < N) index <= index + 1; end
    else cnt <= cnt + 1;
  end
endmodule
"""

# No reset port: the model must drive only clk and uart_rx.
NORESET = """
module noreset(clk, uart_rx, uart_tx);
  input clk; input uart_rx;
  output reg uart_tx = 1'b1;
  always @(posedge clk) uart_tx <= uart_rx;
endmodule
"""


@pytest.fixture(scope="module")
def echo():
    with VerilatorUartTransport(ECHO, top="echo", clk_freq=CLK, baud=BAUD,
                                watch=["received"]) as t:
        yield t


def test_bit_cycles_rounding_and_limits():
    assert bit_cycles(CLK, BAUD) == 8
    assert bit_cycles(48e6, 115200) == 417           # 416.67 rounds up: 0.08 % error
    assert bit_cycles(12e6, 3e6) == 4
    with pytest.raises(ValueError, match="baud error"):
        bit_cycles(1_000_000, 400_000)               # 2.5 -> 2 cycles: 25 % off
    with pytest.raises(ValueError, match="at least 2"):
        bit_cycles(1_000_000, 900_000)
    with pytest.raises(ValueError, match="baud=0"):
        bit_cycles(1_000_000, 0)
    assert serial_model.MAX_BAUD_ERROR == 0.02


def test_loopback_byte_exact_all_values():
    data = bytes(range(256))
    with VerilatorUartTransport(LOOPBACK, top="loopback", clk_freq=CLK, baud=BAUD) as t:
        assert isinstance(t, Transport)
        assert t.bit_cycles == DIV and t.baud_error == 0
        t.write(data[:100])
        t.write(data[100:])
        got = t.read(256, timeout=1.0)
        assert got == data
        # The last frame is decoded at its stop bit's middle, before it is fully sent.
        assert t.framing_errors == 0 and t.tx_pending == 1
        assert t.flush(timeout=1.0) and t.tx_pending == 0
        # 256 back-to-back frames of 10 bits, plus the register and mid-bit latency.
        assert t.cycles == 256 * 10 * DIV
        assert t.time == pytest.approx(t.cycles / CLK)


def test_echo_answers_every_byte(echo):
    before = echo.outputs()["received"]
    message = bytes([0, 1, 0x7F, 0x80, 0xFE, 0x41, 0x5A, 0xC3] * 4)
    echo.write(message)
    assert echo.read(len(message), timeout=0.1) == bytes((b + 1) & 0xFF for b in message)
    assert echo.framing_errors == 0
    assert echo.outputs() == {"received": (before + len(message)) & 0xFF}


def test_read_timeout_returns_fewer_bytes_after_exactly_the_timeout(echo):
    echo.write(b"abc")
    start = echo.cycles
    timeout = 50 * 10 * DIV / CLK          # room for 50 frames; only 3 come back
    assert echo.read(5, timeout=timeout) == b"bcd"
    assert echo.cycles - start == 50 * 10 * DIV
    start = echo.cycles
    assert echo.read(1, timeout=0.000123) == b""     # 123 cycles, nothing sent
    assert echo.cycles - start == 123
    assert echo.read(0, timeout=1.0) == b""          # nothing wanted: no time passes
    assert echo.cycles - start == 123


def test_bytes_stay_buffered_until_read(echo):
    echo.write(b"\x10\x20")
    assert echo.flush(timeout=0.01) and echo.tx_pending == 0
    echo.advance(0.001)
    start = echo.cycles
    assert echo.read(1, timeout=0) == b"\x11"        # already decoded: no time needed
    assert echo.read(1, timeout=0) == b"\x21"
    assert echo.cycles == start


def test_framing_error_is_dropped_and_counted():
    with VerilatorUartTransport(PATTERN, top="pattern", clk_freq=CLK, baud=BAUD) as t:
        assert t.read(3, timeout=len(_PATTERN) * DIV / CLK + 0.001) == b"\x55\xa3"
        assert t.framing_errors == 1


def test_design_without_reset_port():
    with VerilatorUartTransport(NORESET, top="noreset", clk_freq=CLK, baud=BAUD,
                                rst=None, idle_bits=2) as t:
        t.write(b"\x00\xff\x96")
        assert t.read(3, timeout=0.01) == b"\x00\xff\x96"
        assert t.cycles <= 3 * 12 * DIV + DIV


def test_amaranth_component_with_reset_and_watched_output():
    from amaranth.hdl import Module, Signal
    from amaranth.lib import wiring
    from amaranth.lib.wiring import In, Out

    class DelayedLoopback(wiring.Component):
        """A loopback through two registers that counts the cycles its input is low."""

        uart_rx: In(1, init=1)
        uart_tx: Out(1, init=1)
        lows: Out(16)

        def elaborate(self, platform):
            m = Module()
            line = Signal(init=1)
            m.d.sync += [line.eq(self.uart_rx), self.uart_tx.eq(line)]
            with m.If(~self.uart_rx):
                m.d.sync += self.lows.eq(self.lows + 1)
            return m

    with VerilatorUartTransport.for_component(DelayedLoopback(), name="delayed", clk_freq=CLK,
                                              baud=BAUD, watch="lows") as t:
        t.write(b"\x0f")
        assert t.read(1, timeout=0.001) == b"\x0f"
        # Start bit and four zero data bits, DIV cycles each.
        assert t.outputs() == {"lows": 5 * DIV}


def test_bad_arguments():
    with pytest.raises(ValueError, match="rx='serial_in'.*ports: clk, rst, uart_rx"):
        VerilatorUartTransport(LOOPBACK, top="loopback", clk_freq=CLK, baud=BAUD,
                               rx="serial_in")
    with pytest.raises(ValueError, match="top='nope'"):
        VerilatorUartTransport(LOOPBACK, top="nope", clk_freq=CLK, baud=BAUD)
    with pytest.raises(ValueError, match="idle_bits=-1"):
        VerilatorUartTransport(LOOPBACK, top="loopback", clk_freq=CLK, baud=BAUD,
                               idle_bits=-1)
    with pytest.raises(TypeError, match="verilog"):
        VerilatorUartTransport(b"module", top="loopback", clk_freq=CLK, baud=BAUD)
    wide = LOOPBACK.replace("module loopback(clk, rst, uart_rx, uart_tx);",
                            "module loopback(clk, rst, uart_rx, uart_tx, big);\n"
                            "  output [79:0] big; assign big = 0;")
    with pytest.raises(ValueError, match="port 'big' is 80 bits wide"):
        VerilatorUartTransport(wide, top="loopback", clk_freq=CLK, baud=BAUD, watch=["big"])
    with pytest.raises(ValueError, match="watch: module 'loopback' has no port 'leds'"):
        VerilatorUartTransport(LOOPBACK, top="loopback", clk_freq=CLK, baud=BAUD,
                               watch=["leds"])


def test_bad_calls_and_closed_transport(echo):
    with pytest.raises(TypeError, match="data: expected bytes"):
        echo.write("text")
    with pytest.raises(ValueError, match="timeout=-1"):
        echo.read(1, timeout=-1)
    with pytest.raises(ValueError, match="n=-2"):
        echo.read(-2, timeout=1)
    t = VerilatorUartTransport(LOOPBACK, top="loopback", clk_freq=CLK, baud=BAUD)
    t.close()
    t.close()                                         # closing twice is harmless
    with pytest.raises(ValueError, match="closed"):
        t.write(b"x")
