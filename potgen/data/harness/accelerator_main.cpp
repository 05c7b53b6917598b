// Verilator harness of potgen's accelerator: runs Programs sent by
// potgen.runtime.verilator_backend over standard input, one after another, on one model.
//
// Port names come from "potgen_ports.h" (generated per design): the stream ports cmd,
// din (inputs of at most 32 bits), dout (output of any width), and busy, error, cycles.
//
// Request (little-endian uint64 header, then uint32 words):
//   magic REQUEST_MAGIC, n_cmd, n_data, n_out, ready_threshold, seed, max_cycles,
//   reset_cycles; n_cmd command words; n_data data words.
// ready_threshold is the probability of dout.ready in units of 2^-32 (2^32: always).
// Reply (uint64 header, then uint32 words):
//   magic REPLY_MAGIC, status, cycles run, cycles counter, error flag, commands taken,
//   data words taken, results taken; then DOUT_WORDS uint32 per result, least
//   significant first.
// status: 0 finished, 1 max_cycles reached first, 2 a result beyond n_out was offered.
//
// Each cycle follows the Amaranth back end exactly: drive the inputs with the clock low,
// settle, note which words the handshakes move, then raise the clock.
#include <memory>

#include "Vdut.h"
#include "verilated.h"
#include "potgen_io.h"
#include "potgen_ports.h"

namespace {

constexpr uint64_t REQUEST_MAGIC = 0x3151525f4e474f50ull;  // "POGN_RQ1"
constexpr uint64_t REPLY_MAGIC = 0x3150525f4e474f50ull;    // "POGN_RP1"

// dout payload -> DOUT_WORDS uint32, for every width Verilator uses for a port.
template <typename T> void payload_words(T value, uint32_t* out) {
    uint64_t v = static_cast<uint64_t>(value);
    for (int i = 0; i < DOUT_WORDS; ++i) out[i] = i < 2 ? static_cast<uint32_t>(v >> (32 * i)) : 0;
}
template <std::size_t N> void payload_words(const VlWide<N>& value, uint32_t* out) {
    for (int i = 0; i < DOUT_WORDS; ++i) out[i] = static_cast<std::size_t>(i) < N ? value[i] : 0;
}

// One full clock period (inputs unchanged); leaves the clock low and settled.
void tick(Vdut& dut) {
    dut.P_CLK = 1;
    dut.eval();
    dut.P_CLK = 0;
    dut.eval();
}

// The rising edge only: the next cycle lowers the clock together with its new inputs,
// so each simulated cycle costs two evaluations, not three.
void rise(Vdut& dut) {
    dut.P_CLK = 1;
    dut.eval();
}

}  // namespace

int main(int argc, char** argv) {
    auto context = std::make_unique<VerilatedContext>();
    context->commandArgs(argc, argv);
    auto dut = std::make_unique<Vdut>(context.get());
    std::vector<uint32_t> commands, data, results;

    for (;;) {
        uint64_t header[8];
        if (!potgen::read_exact(header, sizeof header)) break;  // host closed: done
        if (header[0] != REQUEST_MAGIC) {
            std::fprintf(stderr, "potgen harness: bad request magic %016llx\n",
                         static_cast<unsigned long long>(header[0]));
            return 2;
        }
        const uint64_t n_cmd = header[1], n_data = header[2], n_out = header[3];
        const uint64_t threshold = header[4], max_cycles = header[6];
        const uint64_t reset_cycles = header[7];
        potgen::Random random(header[5]);
        commands.resize(n_cmd);
        data.resize(n_data);
        if (!potgen::read_exact(commands.data(), 4 * n_cmd) ||
            !potgen::read_exact(data.data(), 4 * n_data)) {
            std::fprintf(stderr, "potgen harness: truncated request\n");
            return 2;
        }
        results.assign(n_out * DOUT_WORDS, 0);

        // Synchronous reset with every handshake idle: registers, counters and the
        // sticky error start from their reset values for every program.
        dut->P_CMD_VALID = 0;
        dut->P_DIN_VALID = 0;
        dut->P_DOUT_READY = 0;
        dut->P_RST = 1;
        dut->P_CLK = 0;
        dut->eval();
        for (uint64_t i = 0; i < reset_cycles; ++i) tick(*dut);
        dut->P_RST = 0;
        dut->eval();

        uint64_t ci = 0, di = 0, no = 0, cycle = 0, status = 0;
        while (ci < n_cmd || di < n_data || no < n_out || dut->P_BUSY) {
            if (cycle >= max_cycles) {
                status = 1;
                break;
            }
            const bool cmd_valid = ci < n_cmd, din_valid = di < n_data;
            const bool ready = (random.next() >> 32) < threshold;
            dut->P_CMD_VALID = cmd_valid;
            dut->P_CMD_PAYLOAD = cmd_valid ? commands[ci] : 0;
            dut->P_DIN_VALID = din_valid;
            dut->P_DIN_PAYLOAD = din_valid ? data[di] : 0;
            dut->P_DOUT_READY = ready;
            dut->P_CLK = 0;
            dut->eval();
            const bool cmd_taken = cmd_valid && dut->P_CMD_READY;
            const bool din_taken = din_valid && dut->P_DIN_READY;
            const bool out_taken = ready && dut->P_DOUT_VALID;
            if (out_taken) {
                if (no >= n_out) {
                    status = 2;
                    break;
                }
                payload_words(dut->P_DOUT_PAYLOAD, &results[no * DOUT_WORDS]);
            }
            rise(*dut);
            ++cycle;
            ci += cmd_taken;
            di += din_taken;
            no += out_taken;
        }
        dut->P_CLK = 0;
        dut->eval();
        const uint64_t reply[8] = {REPLY_MAGIC, status, cycle,
                                   static_cast<uint64_t>(dut->P_CYCLES),
                                   static_cast<uint64_t>(dut->P_ERROR), ci, di, no};
        potgen::write_exact(reply, sizeof reply);
        potgen::write_exact(results.data(), 4 * no * DOUT_WORDS);
        potgen::flush();
    }
    dut->final();
    return 0;
}
