"""The ECP5 PLL (EHXPLLL): divider search and the primitive that makes a clock domain.

An EHXPLLL with its feedback taken from the primary output ``CLKOP`` produces

    f_out = f_in * CLKFB_DIV / CLKI_DIV,      f_vco = f_out * CLKOP_DIV

under the limits of the ECP5 family data sheet (FPGA-DS-02012, "sysCLOCK PLL
Timing"): the phase detector runs at f_in / CLKI_DIV in 3.125..400 MHz, the VCO at
400..800 MHz, the output at 3.125..400 MHz, and every divider is 1..128.
:func:`pll_config` searches the divider settings with exact rational arithmetic
(:class:`fractions.Fraction`): for each reference divider only the two feedback
dividers around the ideal one can give the nearest output, and every output in range
has an output divider that puts the VCO in range. It keeps the output nearest the
request and, among equally near ones, the VCO nearest the middle of its range (the
PLL's best jitter and lock margin, as Lattice's own configuration tool prefers). The
tests check the choice against a brute-force search of all divider triples.

:class:`EcpPll` instantiates the primitive and drives a clock domain whose reset is
held until the PLL reports lock, plus a few cycles, so no register leaves reset on a
clock that is still settling.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction
from numbers import Real

from amaranth.hdl import (
    ClockDomain,
    ClockSignal,
    Elaboratable,
    Instance,
    Module,
    ResetSignal,
    Signal,
)
from amaranth.lib.cdc import FFSynchronizer

__all__ = ["PllConfig", "pll_config", "EcpPll", "PFD_RANGE_MHZ", "VCO_RANGE_MHZ",
           "OUTPUT_RANGE_MHZ", "INPUT_RANGE_MHZ", "DIVIDER_RANGE",
           "DEFAULT_TOLERANCE"]

#: Phase-detector (f_in / CLKI_DIV) range, MHz.
PFD_RANGE_MHZ = (Fraction(3125, 1000), Fraction(400))
#: VCO range, MHz.
VCO_RANGE_MHZ = (Fraction(400), Fraction(800))
#: Output (CLKOP) range, MHz.
OUTPUT_RANGE_MHZ = (Fraction(3125, 1000), Fraction(400))
#: Reference input range, MHz.
INPUT_RANGE_MHZ = (Fraction(8), Fraction(400))
#: Range of CLKI_DIV, CLKFB_DIV and CLKOP_DIV.
DIVIDER_RANGE = (1, 128)
#: Default relative tolerance between the requested and the achieved output.
DEFAULT_TOLERANCE = 0.005

_VCO_MIDDLE = (VCO_RANGE_MHZ[0] + VCO_RANGE_MHZ[1]) / 2


def _mhz(value, param: str, lo: Fraction, hi: Fraction) -> Fraction:
    if isinstance(value, bool) or not isinstance(value, (Real, Fraction)):
        raise TypeError(f"{param}={value!r}: expected a frequency in MHz "
                        f"({float(lo):g}..{float(hi):g})")
    exact = Fraction(value) if isinstance(value, (int, Fraction)) else \
        Fraction(str(value))
    if not lo <= exact <= hi:
        raise ValueError(f"{param}={value!r} MHz: must be {float(lo):g}..{float(hi):g} MHz")
    return exact


@dataclass(frozen=True)
class PllConfig:
    """One EHXPLLL divider setting and the frequencies it gives.

    Members
    -------
    input_mhz : Fraction
        Reference clock.
    requested_mhz : Fraction
        The output asked for.
    clki_div, clkfb_div, clkop_div : int
        Reference, feedback and output dividers.
    """

    input_mhz: Fraction
    requested_mhz: Fraction
    clki_div: int
    clkfb_div: int
    clkop_div: int

    @property
    def pfd_mhz(self) -> Fraction:
        return self.input_mhz / self.clki_div

    @property
    def output_mhz(self) -> Fraction:
        """The exact output frequency."""
        return self.input_mhz * self.clkfb_div / self.clki_div

    @property
    def vco_mhz(self) -> Fraction:
        return self.output_mhz * self.clkop_div

    @property
    def error(self) -> float:
        """Relative error of the output against the request."""
        return float(abs(self.output_mhz - self.requested_mhz) / self.requested_mhz)

    @property
    def clkop_cphase(self) -> int:
        """Coarse phase of CLKOP for 0 degrees: one VCO period short of a full output
        period (the value Lattice's tools write for an unshifted output)."""
        return self.clkop_div - 1

    def parameters(self) -> dict:
        """EHXPLLL parameters (``p_`` names for :class:`~amaranth.hdl.Instance`)."""
        return {
            "p_PLLRST_ENA": "DISABLED", "p_INTFB_WAKE": "DISABLED",
            "p_STDBY_ENABLE": "DISABLED", "p_DPHASE_SOURCE": "DISABLED",
            "p_OUTDIVIDER_MUXA": "DIVA", "p_FEEDBK_PATH": "CLKOP",
            "p_CLKOP_ENABLE": "ENABLED", "p_CLKI_DIV": self.clki_div,
            "p_CLKFB_DIV": self.clkfb_div, "p_CLKOP_DIV": self.clkop_div,
            "p_CLKOP_CPHASE": self.clkop_cphase, "p_CLKOP_FPHASE": 0,
        }

    def attributes(self) -> dict:
        """Cell attributes: the analogue settings every EHXPLLL generator emits, and the
        frequencies (read by the tools' timing analysis)."""
        return {"FREQUENCY_PIN_CLKI": f"{float(self.input_mhz):.6g}",
                "FREQUENCY_PIN_CLKOP": f"{float(self.output_mhz):.6g}",
                "ICP_CURRENT": "12", "LPF_RESISTOR": "8",
                "MFG_ENABLE_FILTEROPAMP": "1", "MFG_GMCREF_SEL": "2"}

    def as_dict(self) -> dict:
        return {"input_mhz": float(self.input_mhz), "requested_mhz": float(self.requested_mhz),
                "output_mhz": float(self.output_mhz), "vco_mhz": float(self.vco_mhz),
                "pfd_mhz": float(self.pfd_mhz), "clki_div": self.clki_div,
                "clkfb_div": self.clkfb_div, "clkop_div": self.clkop_div,
                "error": self.error}


def pll_config(input_mhz, output_mhz, *, tolerance: float = DEFAULT_TOLERANCE) -> PllConfig:
    """The EHXPLLL dividers whose output is nearest ``output_mhz``.

    Parameters
    ----------
    input_mhz : number
        Reference clock, 8..400 MHz.
    output_mhz : number
        Requested output, 3.125..400 MHz.
    tolerance : float
        Largest accepted relative error (default 0.5 %).

    Raises
    ------
    ValueError
        When a frequency is out of range or no divider setting comes within
        ``tolerance`` (the message names the nearest achievable output).
    """
    fin = _mhz(input_mhz, "input_mhz", *INPUT_RANGE_MHZ)
    fout = _mhz(output_mhz, "output_mhz", *OUTPUT_RANGE_MHZ)
    if isinstance(tolerance, bool) or not isinstance(tolerance, Real) or \
            not 0 <= tolerance < 1:
        raise ValueError(f"tolerance={tolerance!r}: expected a relative error 0 <= t < 1")
    lo, hi = DIVIDER_RANGE
    best, best_key = None, None
    for clki in range(lo, hi + 1):
        pfd = fin / clki
        if not PFD_RANGE_MHZ[0] <= pfd <= PFD_RANGE_MHZ[1]:
            continue
        # For one reference divider the output is pfd * CLKFB_DIV: only the two
        # feedback dividers around fout / pfd can be nearest the request.
        ideal = fout / pfd
        for clkfb in {math.floor(ideal), math.ceil(ideal)}:
            if not lo <= clkfb <= hi:
                continue
            out = pfd * clkfb
            if not OUTPUT_RANGE_MHZ[0] <= out <= OUTPUT_RANGE_MHZ[1]:
                continue
            # Any output in range has an output divider that puts the VCO in range
            # (400 / 3.125 = 128); of those, the one nearest the middle of the range.
            od_lo = max(lo, math.ceil(VCO_RANGE_MHZ[0] / out))
            od_hi = min(hi, math.floor(VCO_RANGE_MHZ[1] / out))
            for od in range(od_lo, od_hi + 1):
                key = (abs(out - fout), abs(out * od - _VCO_MIDDLE), clki, clkfb, od)
                if best_key is None or key < best_key:
                    best_key = key
                    best = PllConfig(fin, fout, clki, clkfb, od)
    if best is None:
        raise ValueError(f"output_mhz={output_mhz!r}: no EHXPLLL setting reaches it from "
                         f"{float(fin):g} MHz")
    if best.error > tolerance:
        raise ValueError(f"output_mhz={output_mhz!r}: the nearest EHXPLLL output from "
                         f"{float(fin):g} MHz is {float(best.output_mhz):.4f} MHz "
                         f"({best.error:.2%} off, tolerance {tolerance:.2%}); ask for "
                         f"{float(best.output_mhz):.4f} MHz or another clock")
    return best


class EcpPll(Elaboratable):
    """An EHXPLLL driving the clock and reset of ``domain``, held in reset until lock.

    The domain itself is defined by the caller (the top module), as Amaranth wants a
    domain defined above every module that uses it.

    Parameters
    ----------
    config : PllConfig
        The dividers (:func:`pll_config`).
    clk_in : Signal
        Reference clock (the board oscillator's input buffer).
    domain : str
        Name of the clock domain driven (default ``"sync"``).
    reset_in : Value or None
        Extra asynchronous reset request (a board button), or None.
    hold_cycles : int
        Cycles of the new clock the reset lasts after lock (and after ``reset_in``).

    Members
    -------
    locked : Signal
        The PLL's ``LOCK`` output.
    clock : Signal
        The PLL's output clock (the clock of ``domain``).
    """

    def __init__(self, config: PllConfig, clk_in, *, domain: str = "sync", reset_in=None,
                 hold_cycles: int = 16):
        if not isinstance(config, PllConfig):
            raise TypeError(f"config: expected a PllConfig (from pll_config), got "
                            f"{type(config).__name__}")
        if isinstance(hold_cycles, bool) or not isinstance(hold_cycles, int) or \
                not 2 <= hold_cycles <= 1 << 16:
            raise ValueError(f"hold_cycles={hold_cycles!r}: expected an int 2..65536")
        self.config = config
        self.clk_in = clk_in
        self.domain = domain
        self.reset_in = reset_in
        self.hold_cycles = hold_cycles
        self.locked = Signal()
        self.clock = Signal()

    def elaborate(self, platform):
        m = Module()
        clk_out = self.clock
        m.submodules.pll = Instance(
            "EHXPLLL", a_keep=1, **{f"a_{k}": v for k, v in self.config.attributes().items()},
            **self.config.parameters(),
            i_CLKI=self.clk_in, i_CLKFB=clk_out, o_CLKOP=clk_out, o_LOCK=self.locked,
            i_RST=0, i_STDBY=0, i_PHASESEL0=0, i_PHASESEL1=0, i_PHASEDIR=1,
            i_PHASESTEP=1, i_PHASELOADREG=1, i_PLLWAKESYNC=0, i_ENCLKOP=0)
        m.d.comb += ClockSignal(self.domain).eq(clk_out)

        # Reset stretcher in a reset-less domain on the new clock: it restarts whenever
        # lock is lost or the reset button is pressed, then counts the hold cycles.
        hold_domain = f"{self.domain}_por"
        m.domains += ClockDomain(hold_domain, reset_less=True, local=True)
        m.d.comb += ClockSignal(hold_domain).eq(clk_out)
        count = Signal(range(self.hold_cycles + 1), init=0)
        request = ~self.locked
        if self.reset_in is not None:
            request = request | self.reset_in
        # The request is asynchronous to the new clock: two flip-flops before it is used.
        request_sync = Signal(init=1)
        m.submodules.request_sync = FFSynchronizer(request, request_sync, init=1,
                                                   o_domain=hold_domain)
        with m.If(request_sync):
            m.d[hold_domain] += count.eq(0)
        with m.Elif(count != self.hold_cycles):
            m.d[hold_domain] += count.eq(count + 1)
        m.d.comb += ResetSignal(self.domain).eq(count != self.hold_cycles)
        return m
