// Binary standard input / output helpers shared by potgen's Verilator harnesses.
//
// Every number crosses the pipe little-endian (the host is x86-64 or AArch64, both
// little-endian, and the Python side packs with "<"), so plain memory copies suffice.
#pragma once

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <vector>

namespace potgen {

// Reads exactly n bytes; false on end of input (the host closed the pipe).
inline bool read_exact(void* buffer, size_t n) {
    return n == 0 || std::fread(buffer, 1, n, stdin) == n;
}

inline void write_exact(const void* buffer, size_t n) {
    if (n && std::fwrite(buffer, 1, n, stdout) != n) {
        std::fprintf(stderr, "potgen harness: cannot write to the host\n");
        std::exit(3);
    }
}

template <typename T> inline void put(T value) { write_exact(&value, sizeof value); }

inline void flush() { std::fflush(stdout); }

// splitmix64: a small, well-mixed generator whose sequence depends only on the seed,
// so a back-pressure pattern is reproducible from the seed alone.
struct Random {
    uint64_t state;
    explicit Random(uint64_t seed) : state(seed) {}
    uint64_t next() {
        uint64_t z = (state += 0x9E3779B97F4A7C15ull);
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
        return z ^ (z >> 31);
    }
};

}  // namespace potgen
