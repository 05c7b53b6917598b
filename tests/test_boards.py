"""Board registry, EHXPLLL divider search, build configuration and the fit check."""

import functools
import json
import re
from fractions import Fraction

import pytest
from amaranth.build import ResourceError
from hypothesis import given, settings
from hypothesis import strategies as st

from potgen.boards import BOARDS, BuildConfig, board, check_fit, pll_config
from potgen.boards.pll import (
    DIVIDER_RANGE,
    OUTPUT_RANGE_MHZ,
    PFD_RANGE_MHZ,
    VCO_RANGE_MHZ,
)
from potgen.flow.devices import DEVICES

EXPECTED_BOARDS = {
    "ulx3s-12f": "LFE5U-12F", "ulx3s-25f": "LFE5U-25F", "ulx3s-45f": "LFE5U-45F",
    "ulx3s-85f": "LFE5U-85F", "orangecrab-25f": "LFE5U-25F",
    "orangecrab-85f": "LFE5U-85F", "ecp5-5g-evn": "LFE5UM5G-85F",
    "ecpix5-45f": "LFE5UM5G-45F", "ecpix5-85f": "LFE5UM5G-85F",
    "colorlight-5a75b": "LFE5U-25F",
}


# --- registry -----------------------------------------------------------------------------

def test_every_board_of_the_issue_is_registered_with_its_part():
    assert {name: b.part for name, b in BOARDS.items()} == EXPECTED_BOARDS


@pytest.mark.parametrize("name", list(EXPECTED_BOARDS))
def test_fit_device_has_the_parts_size(name):
    b = BOARDS[name]
    size = re.search(r"-(\d+)F$", b.part).group(1)
    assert DEVICES[b.device].part.endswith(f"-{size}F")
    assert b.default_clock_mhz > 0 and b.oscillator_mhz > 0


def test_ulx3s_12f_is_checked_against_its_own_limits_not_the_25f_die():
    assert BOARDS["ulx3s-12f"].device == "12k"
    assert DEVICES["12k"].lut4 < DEVICES["25k"].lut4


@pytest.mark.parametrize("alias", ["ULX3S-85F", "ulx3s_85f", "ulx3s85f", " Ulx3s-85F "])
def test_aliases_find_the_board(alias):
    assert board(alias).name == "ulx3s-85f"


def test_unknown_board_names_every_known_one():
    with pytest.raises(ValueError) as e:
        board("ulx4s")
    assert "'ulx4s'" in str(e.value)
    for name in BOARDS:
        assert name in str(e.value)
    with pytest.raises(TypeError):
        board(85)


@pytest.mark.parametrize("name", list(EXPECTED_BOARDS))
def test_every_resource_the_board_top_uses_exists_on_the_platform(name):
    b = BOARDS[name]
    platform = b.platform()
    platform.request(b.clock_resource, 0, dir="-")
    uart = platform.request(b.uart.resource, b.uart.number, dir="-")
    assert hasattr(uart, "rx") and hasattr(uart, "tx")
    seen = set()
    for led in b.leds:
        if (led.resource, led.number) not in seen:
            pins = platform.request(led.resource, led.number, dir="-")
            seen.add((led.resource, led.number))
        if led.subsignal:
            assert hasattr(pins, led.subsignal)
    if b.reset is not None:
        platform.request(*b.reset, dir="-")
    # Requesting twice is refused: no resource is used by two functions.
    with pytest.raises(ResourceError):
        platform.request(b.uart.resource, b.uart.number, dir="-")


@pytest.mark.parametrize("name", list(EXPECTED_BOARDS))
def test_led_bits_name_led_layout_fields(name):
    from potgen.hw.host_top import LED_FIELDS
    for led in BOARDS[name].leds:
        assert led.bits and set(led.bits) <= set(LED_FIELDS)


def test_uart_pins_match_the_platform_resource():
    for b in BOARDS.values():
        res = b.platform().lookup(b.uart.resource, b.uart.number)
        pins = {sub.name: sub.ios[0] for sub in res.ios}
        if b.uart.extra is None:
            assert (pins["rx"].names[0], pins["tx"].names[0]) == (b.uart.rx, b.uart.tx)
        else:
            # Header pins go through a connector; the balls are checked in the LPF
            # (test_boards_top.py).
            assert pins["rx"].dir == "i" and pins["tx"].dir == "o"


# --- PLL ----------------------------------------------------------------------------------

@pytest.mark.parametrize("fin, fout, divs", [
    (25, 50, (1, 2, 12)),     # ULX3S default: VCO 600
    (12, 16, (3, 4, 37)),     # the same setting Project Trellis' ecppll picks
    (12, 48, (1, 4, 12)),
    (100, 75, (4, 3, 8)),
])
def test_known_settings(fin, fout, divs):
    c = pll_config(fin, fout)
    assert (c.clki_div, c.clkfb_div, c.clkop_div) == divs
    assert c.output_mhz == fout and c.error == 0.0
    assert c.parameters()["p_CLKOP_CPHASE"] == divs[2] - 1
    assert c.parameters()["p_FEEDBK_PATH"] == "CLKOP"


@given(fin=st.sampled_from([12, 25, 48, 100]),
       fout=st.integers(min_value=10_000, max_value=250_000).map(lambda k: Fraction(k, 1000)))
def test_every_setting_respects_the_limits_and_the_tolerance(fin, fout):
    try:
        c = pll_config(fin, fout)
    except ValueError as e:
        # Some requests are unreachable (12 MHz in: the 3.125 MHz PFD floor allows only
        # CLKI_DIV <= 3); the error then names the nearest output, off by > 0.5 %.
        nearest = Fraction(re.search(r"is ([\d.]+) MHz", str(e)).group(1))
        assert abs(nearest - fout) / fout > Fraction(5, 1000) - Fraction(1, 10**4)
        c = pll_config(fin, fout, tolerance=0.9)
    else:
        assert abs(c.output_mhz - fout) / fout <= 0.005
    assert c.output_mhz == Fraction(fin) * c.clkfb_div / c.clki_div   # exact
    assert VCO_RANGE_MHZ[0] <= c.vco_mhz <= VCO_RANGE_MHZ[1]
    assert PFD_RANGE_MHZ[0] <= c.pfd_mhz <= PFD_RANGE_MHZ[1]
    assert OUTPUT_RANGE_MHZ[0] <= c.output_mhz <= OUTPUT_RANGE_MHZ[1]
    for d in (c.clki_div, c.clkfb_div, c.clkop_div):
        assert DIVIDER_RANGE[0] <= d <= DIVIDER_RANGE[1]


@functools.cache
def _reachable_outputs(fin):
    """Brute-force reference, in integers: every (CLKI_DIV, CLKFB_DIV) for which some
    output divider puts the VCO in 400..800 MHz, with PFD and output in range."""
    pairs = []
    for ref in range(1, 129):
        if 8 * fin < 25 * ref:                   # PFD = fin / ref < 3.125 MHz
            continue
        for fb in range(1, 129):
            num = fin * fb                       # output = num / ref MHz
            if not 25 * ref <= 8 * num <= 3200 * ref:
                continue
            if any(400 * ref <= num * od <= 800 * ref for od in range(1, 129)):
                pairs.append((ref, fb))
    return pairs


@settings(max_examples=15)
@given(fin=st.sampled_from([12, 25, 48]), fout=st.integers(min_value=5, max_value=200))
def test_no_setting_is_nearer_than_the_chosen_one(fin, fout):
    c = pll_config(fin, fout, tolerance=0.5)
    best = min(abs(Fraction(fin * fb, ref) - fout) for ref, fb in _reachable_outputs(fin))
    assert abs(c.output_mhz - fout) == best
    assert any(400 <= c.output_mhz * od <= 800 for od in range(1, 129))
    assert abs(c.vco_mhz - 600) <= c.output_mhz       # the VCO is nearest the middle


@pytest.mark.parametrize("fin, fout, match", [
    (25, 500, "output_mhz=500"), (25, 1, "output_mhz=1"), (4, 50, "input_mhz=4"),
    (25, "50", "expected a frequency"), (True, 50, "expected a frequency"),
])
def test_out_of_range_frequencies_are_refused(fin, fout, match):
    with pytest.raises((ValueError, TypeError), match=match):
        pll_config(fin, fout)


def test_unreachable_within_tolerance_names_the_nearest_output():
    with pytest.raises(ValueError, match=r"nearest EHXPLLL output .* MHz"):
        pll_config(25, 33.3, tolerance=0.0)
    assert pll_config(25, 33.3).error < 0.005


# --- configuration ------------------------------------------------------------------------

def test_defaults_of_every_board_are_valid_configs():
    for name in BOARDS:
        c = BuildConfig.default_for(name)
        assert c.board == name and c.effective_clock_mhz == BOARDS[name].default_clock_mhz


configs = st.builds(
    BuildConfig, board=st.sampled_from(list(BOARDS)), rows=st.integers(1, 16),
    cols=st.integers(1, 16), weight=st.sampled_from(["pot4", "apot4", "int4", "pot5-nz"]),
    act=st.sampled_from(["uint8", "int8", "uint4"]), k_max=st.integers(1, 512),
    acc_bits=st.one_of(st.just("auto"), st.integers(8, 32)),
    overflow=st.sampled_from(["wrap", "saturate"]), pipeline=st.integers(0, 2),
    clock_mhz=st.one_of(st.none(), st.floats(10, 200).map(lambda f: round(f, 3))),
    baud=st.sampled_from([9600, 115200, 1_000_000]), self_test=st.booleans(),
    seed=st.integers(0, 100))


@given(configs)
def test_config_round_trips_json_and_toml(config):
    assert BuildConfig.from_json(config.to_json()) == config
    assert BuildConfig.from_toml(config.to_toml()) == config
    assert BuildConfig.from_dict(json.loads(config.to_json())) == config


def test_config_normalises_names_and_formats():
    c = BuildConfig(board="ULX3S_85F", weight="POT4", act="UINT8")
    assert (c.board, c.weight, c.act) == ("ulx3s-85f", "pot4", "uint8")


@pytest.mark.parametrize("values, error, match", [
    ({"board": "ulx3s-85f", "rowz": 2}, ValueError, "unknown key 'rowz'"),
    ({"rows": 2}, ValueError, "'board' is required"),
    ({"board": "nope"}, ValueError, "known boards"),
    ({"board": "ulx3s-85f", "rows": 0}, ValueError, "rows=0"),
    ({"board": "ulx3s-85f", "rows": "2"}, TypeError, "rows='2'"),
    ({"board": "ulx3s-85f", "weight": "pot99x"}, ValueError, "pot99x"),
    ({"board": "ulx3s-85f", "acc_bits": "big"}, ValueError, "acc_bits='big'"),
    ({"board": "ulx3s-85f", "clock_mhz": 500}, ValueError, "clock_mhz=500"),
    ({"board": "ulx3s-85f", "self_test": 1}, TypeError, "self_test=1"),
    ({"board": "ulx3s-85f", "overflow": "clip"}, ValueError, "overflow='clip'"),
])
def test_bad_config_values_are_refused_with_the_key(values, error, match):
    with pytest.raises(error, match=match):
        BuildConfig.from_dict(values)


def test_config_files_by_suffix(tmp_path):
    c = BuildConfig.default_for("orangecrab-25f", rows=2, clock_mhz=24.0)
    (tmp_path / "a.toml").write_text(c.to_toml())
    (tmp_path / "a.json").write_text(c.to_json())
    assert BuildConfig.load(tmp_path / "a.toml") == c == BuildConfig.load(tmp_path / "a.json")
    with pytest.raises(ValueError, match=r"\.json or \.toml"):
        BuildConfig.load(tmp_path / "a.yaml")
    with pytest.raises(ValueError, match="cannot read"):
        BuildConfig.load(tmp_path / "missing.toml")
    (tmp_path / "bad.toml").write_text("board = \n")
    with pytest.raises(ValueError, match="not valid TOML"):
        BuildConfig.load(tmp_path / "bad.toml")


# --- fit check ----------------------------------------------------------------------------

def test_every_default_design_fits_its_board():
    for name in BOARDS:
        estimate, problems = check_fit(BuildConfig.default_for(name))
        assert problems == [], (name, problems)
        assert estimate["resources"]["lut4_sites"] > 0 and estimate["fmax_mhz"] > 0


def test_a_design_for_the_25f_does_not_fit_the_12f():
    # Sized by the estimate: above the 12F's 12,000 LUT4, below the 25F's 24,288.
    big = dict(rows=10, cols=10, weight="pot4", act="uint8")
    est25, problems25 = check_fit(BuildConfig(board="ulx3s-25f", **big))
    est12, problems12 = check_fit(BuildConfig(board="ulx3s-12f", **big))
    assert est12["resources"] == est25["resources"]
    assert 12_000 < est12["resources"]["lut4_sites"] < 24_288
    assert problems25 == []
    assert problems12 and "LFE5U-12F" in problems12[0] and "LUT4" in problems12[0]


def test_a_16x16_array_does_not_fit_the_colorlights_25f():
    _, problems = check_fit(BuildConfig(board="colorlight-5a75b", rows=16, cols=16))
    assert any("LFE5U-25F" in p for p in problems)
