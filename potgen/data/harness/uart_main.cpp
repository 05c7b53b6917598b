// Verilator harness of a design with a UART: a serial line model at its pins.
//
// potgen.runtime.serial_model.VerilatorUartTransport runs this program and sends it
// commands over standard input; simulated time advances only inside a command, so the
// host decides how much device time passes.
//
// Pins (from "potgen_ports.h"): P_CLK, P_RST (when HAS_RST), P_RX (the design's serial
// input, driven here, idle high), P_TX (the design's serial output, decoded here).
// Arguments: bit_cycles reset_cycles idle_bits.
//   * Transmit (into P_RX): 8N1 frames, least significant bit first, each bit held for
//     exactly bit_cycles clock cycles, frames back to back plus idle_bits idle bit
//     times between them.
//   * Receive (from P_TX): a falling edge on an idle line starts a frame; the line is
//     sampled in the middle of every bit (bit_cycles / 2 cycles after the edge, rounded
//     down, then every bit_cycles): a start bit no longer low there is a glitch and
//     ignored, a stop bit that is low is a framing error (the byte is dropped and
//     counted; reception resumes once the line is high again).
//
// Commands (one byte, then little-endian arguments); every command but 'W' replies
//   uint64 now, uint64 framing_errors, uint64 tx_pending, uint32 count, count bytes:
//   'W' uint32 n, n bytes   queue bytes for transmission (no reply)
//   'R' uint32 n, uint64 c  run until n bytes were received or c cycles passed; reply
//                           with up to n received bytes (the rest stay buffered)
//   'A' uint64 c            run c cycles
//   'F' uint64 c            run until every queued byte is sent, at most c cycles
//   'S'                     status only
//   'O'                     reply uint64 per watched output (P_WATCH0.., WATCH_COUNT of
//                           them, each at most 64 bits wide), no status
#include <algorithm>
#include <deque>
#include <memory>

#include "Vdut.h"
#include "verilated.h"
#include "potgen_io.h"
#include "potgen_ports.h"

namespace {

struct Transmitter {
    uint64_t bit_cycles, idle_bits;
    std::deque<uint8_t> queue;
    bool active = false;
    uint8_t byte = 0;
    uint64_t bit = 0, count = 0, gap = 0;

    // Level of the line in the current cycle (starts the next frame when free).
    int level() {
        if (!active && gap == 0 && !queue.empty()) {
            byte = queue.front();
            queue.pop_front();
            active = true;
            bit = count = 0;
        }
        if (!active) return 1;
        if (bit == 0) return 0;
        if (bit <= 8) return (byte >> (bit - 1)) & 1;
        return 1;
    }
    void advance() {
        if (!active) {
            if (gap) --gap;
            return;
        }
        if (++count == bit_cycles) {
            count = 0;
            if (++bit == 10) {
                active = false;
                gap = idle_bits * bit_cycles;
            }
        }
    }
    uint64_t pending() const { return queue.size() + (active ? 1 : 0); }
};

struct Receiver {
    enum State { WAIT_HIGH, IDLE, FRAME };
    uint64_t bit_cycles;
    State state = WAIT_HIGH;  // a line low since power-up is not a start bit
    uint64_t next_sample = 0, bit = 0, framing_errors = 0;
    uint8_t byte = 0;
    std::deque<uint8_t> received;

    void sample(uint64_t now, int level) {
        switch (state) {
        case WAIT_HIGH:
            if (level) state = IDLE;
            break;
        case IDLE:
            if (!level) {
                state = FRAME;
                bit = 0;
                byte = 0;
                next_sample = now + bit_cycles / 2;
            }
            break;
        case FRAME:
            if (now != next_sample) break;
            next_sample += bit_cycles;
            if (bit == 0) {
                if (level) state = IDLE;  // glitch, not a start bit
            } else if (bit <= 8) {
                byte |= static_cast<uint8_t>(level << (bit - 1));
            } else {
                if (level) {
                    received.push_back(byte);
                    state = IDLE;
                } else {
                    ++framing_errors;
                    state = WAIT_HIGH;
                }
            }
            ++bit;
            break;
        }
    }
};

}  // namespace

int main(int argc, char** argv) {
    if (argc < 4) {
        std::fprintf(stderr, "usage: %s bit_cycles reset_cycles idle_bits\n", argv[0]);
        return 2;
    }
    const uint64_t bit_cycles = std::strtoull(argv[1], nullptr, 10);
    const uint64_t reset_cycles = std::strtoull(argv[2], nullptr, 10);
    const uint64_t idle_bits = std::strtoull(argv[3], nullptr, 10);
    if (bit_cycles < 2) {
        std::fprintf(stderr, "bit_cycles must be at least 2\n");
        return 2;
    }
    auto context = std::make_unique<VerilatedContext>();
    auto dut = std::make_unique<Vdut>(context.get());
    Transmitter tx{bit_cycles, idle_bits};
    Receiver rx{bit_cycles};
    uint64_t now = 0;

    dut->P_RX = 1;
    dut->P_CLK = 0;
#if HAS_RST
    dut->P_RST = 1;
    dut->eval();
    for (uint64_t i = 0; i < reset_cycles; ++i) {
        dut->P_CLK = 1;
        dut->eval();
        dut->P_CLK = 0;
        dut->eval();
    }
    dut->P_RST = 0;
#endif
    dut->eval();

    auto cycle = [&]() {
        dut->P_RX = tx.level();
        dut->P_CLK = 0;
        dut->eval();
        rx.sample(now, dut->P_TX & 1);
        dut->P_CLK = 1;
        dut->eval();
        tx.advance();
        ++now;
    };
    auto reply = [&](uint64_t n) {
        const uint64_t count = std::min<uint64_t>(n, rx.received.size());
        potgen::put<uint64_t>(now);
        potgen::put<uint64_t>(rx.framing_errors);
        potgen::put<uint64_t>(tx.pending());
        potgen::put<uint32_t>(static_cast<uint32_t>(count));
        std::vector<uint8_t> bytes(rx.received.begin(), rx.received.begin() + count);
        rx.received.erase(rx.received.begin(), rx.received.begin() + count);
        potgen::write_exact(bytes.data(), bytes.size());
        potgen::flush();
    };

    for (;;) {
        char command;
        if (!potgen::read_exact(&command, 1)) break;
        if (command == 'W') {
            uint32_t n;
            std::vector<uint8_t> bytes;
            bool ok = potgen::read_exact(&n, 4);
            if (ok) {
                bytes.resize(n);
                ok = potgen::read_exact(bytes.data(), n);
            }
            if (!ok) {
                std::fprintf(stderr, "potgen harness: truncated write\n");
                return 2;
            }
            tx.queue.insert(tx.queue.end(), bytes.begin(), bytes.end());
        } else if (command == 'R') {
            uint32_t n;
            uint64_t limit;
            if (!potgen::read_exact(&n, 4) || !potgen::read_exact(&limit, 8)) return 2;
            for (uint64_t i = 0; i < limit && rx.received.size() < n; ++i) cycle();
            reply(n);
        } else if (command == 'A' || command == 'F') {
            uint64_t limit;
            if (!potgen::read_exact(&limit, 8)) return 2;
            for (uint64_t i = 0; i < limit && (command == 'A' || tx.pending()); ++i) cycle();
            reply(0);
        } else if (command == 'S') {
            reply(0);
        } else if (command == 'O') {
            dut->eval();
            uint64_t values[WATCH_COUNT + 1] = {0};
#if WATCH_COUNT > 0
            values[0] = static_cast<uint64_t>(dut->P_WATCH0);
#endif
#if WATCH_COUNT > 1
            values[1] = static_cast<uint64_t>(dut->P_WATCH1);
#endif
#if WATCH_COUNT > 2
            values[2] = static_cast<uint64_t>(dut->P_WATCH2);
#endif
#if WATCH_COUNT > 3
            values[3] = static_cast<uint64_t>(dut->P_WATCH3);
#endif
            potgen::write_exact(values, 8 * WATCH_COUNT);
            potgen::flush();
        } else {
            std::fprintf(stderr, "potgen harness: unknown command %d\n", command);
            return 2;
        }
    }
    dut->final();
    return 0;
}
