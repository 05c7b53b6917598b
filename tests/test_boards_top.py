"""BoardTop on every board's platform: pins, clock constraints and the PLL in the build plan
(amaranth's files, no tool run)."""

import re

import pytest
from amaranth_sim import collect_unelaborated  # noqa: F401 (fixture)
from test_boards_link_double import LinkDouble

from potgen.boards import BOARDS, BoardTop
from potgen.hw.accelerator import Accelerator

pytestmark = pytest.mark.filterwarnings("ignore::amaranth.hdl.UnusedElaboratable")


def _plan(name, **kwargs):
    b = BOARDS[name]
    top = BoardTop(b, Accelerator(1, 1, "pot4", "uint8", k_max=4), self_test=False,
                   link_factory=LinkDouble, **kwargs)
    plan = b.platform().prepare(top, name="potgen_top")
    files = plan.files
    return b, top, files["potgen_top.lpf"], files["potgen_top.il"]


def _located(lpf):
    return set(re.findall(r'LOCATE COMP "[^"]+" SITE "([A-Z0-9]+)";', lpf))


@pytest.mark.parametrize("name", list(BOARDS))
def test_plan_locates_uart_leds_clock_and_constrains_the_pll(name):
    b, top, lpf, il = _plan(name)
    sites = _located(lpf)
    assert {b.uart.rx, b.uart.tx} <= sites, (name, sites)
    # One LED pin per LedPin entry, and the oscillator (plus the reset button).
    expected = 1 + 2 + len(b.leds) + (b.reset is not None)
    assert len(sites) == expected
    assert f'FREQUENCY NET "pll.clock" {float(top.pll.output_mhz) * 1e6:.1f} HZ;' in lpf
    assert top.pll.output_mhz == b.default_clock_mhz
    assert re.search(rf'FREQUENCY PORT "{b.clock_resource}_0__io" '
                     rf'{b.oscillator_mhz * 1e6:.1f} HZ;', lpf)
    cell = re.search(r"cell \\EHXPLLL .*?\n  end", il, re.DOTALL)
    assert cell, "no EHXPLLL in the design"
    params = dict(re.findall(r"parameter \\(\w+) (\S+)", cell.group(0)))
    assert int(params["CLKI_DIV"]) == top.pll.clki_div
    assert int(params["CLKFB_DIV"]) == top.pll.clkfb_div
    assert int(params["CLKOP_DIV"]) == top.pll.clkop_div
    assert params["FEEDBK_PATH"] == '"CLKOP"'


def test_header_uart_of_the_orangecrab_lands_on_the_feather_rx_tx_balls():
    _, _, lpf, _ = _plan("orangecrab-85f")
    assert re.search(r'LOCATE COMP "potgen_uart_0__rx__io" SITE "N17";', lpf)
    assert re.search(r'LOCATE COMP "potgen_uart_0__tx__io" SITE "M18";', lpf)


def test_colorlight_status_led_is_on_the_j1_header():
    _, _, lpf, _ = _plan("colorlight-5a75b")
    assert re.search(r'LOCATE COMP "potgen_status_led_0__io" SITE "F3";', lpf)


def test_requested_clock_is_what_the_pll_makes():
    _, top, lpf, _ = _plan("ecpix5-85f", clock_mhz=40)
    assert top.pll.output_mhz == 40 and top.host.clk_freq == 40e6
    assert 'FREQUENCY NET "pll.clock" 40000000.0 HZ;' in lpf


def test_unreachable_clock_is_refused_before_elaboration():
    with pytest.raises(ValueError, match="output_mhz=500"):
        BoardTop("ulx3s-85f", Accelerator(1, 1, "pot4", "uint8", k_max=4), clock_mhz=500,
                 link_factory=LinkDouble)


def test_board_top_needs_a_platform():
    from amaranth.hdl import Fragment
    top = BoardTop("ulx3s-85f", Accelerator(1, 1, "pot4", "uint8", k_max=4),
                   self_test=False, link_factory=LinkDouble)
    with pytest.raises(ValueError, match="needs the board's platform"):
        Fragment.get(top, None)
