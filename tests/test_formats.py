"""potgen.formats: worked examples, layout rules, round trips and bad specs."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from potgen.formats import (APOT_BITS, INT_BITS, POT_BITS, SP2_BITS, IntFormat, TermFormat,
                            parse_format)

ALL_SPECS = ([f"int{n}" for n in INT_BITS] + [f"uint{n}" for n in INT_BITS]
             + [f"pot{n}" for n in POT_BITS] + [f"pot{n}-nz" for n in POT_BITS]
             + [f"apot{n}" for n in APOT_BITS] + [f"sp2-{n}" for n in SP2_BITS]
             + ["upot:{0,1,4,8}+{0,2}", "upot:u{0,1}+{0,2}", "upot:{0,1}+{0,4}+{0,16,32}",
                "upot:{1,2}", "upot:u{0,1,2,4,8}"])
SMALL_SPECS = [s for s in ALL_SPECS if parse_format(s).bits <= 12]


def magnitudes(spec):
    return sorted({abs(v) for v in parse_format(spec).levels()})


# --- worked examples (BACKGROUND.md section 2, DESIGN.md section 1) ---------------------

def test_int_levels():
    assert list(parse_format("int4").levels()) == list(range(8)) + list(range(-8, 0))
    assert list(parse_format("uint4").levels()) == list(range(16))
    assert len(parse_format("int32").levels()) == 2 ** 32
    assert parse_format("int32").levels()[2 ** 31] == -2 ** 31


def test_pot_levels():
    assert magnitudes("pot4") == [0, 1, 2, 4, 8, 16, 32, 64]
    assert magnitudes("pot4-nz") == [1, 2, 4, 8, 16, 32, 64, 128]
    assert 0 not in parse_format("pot4-nz").levels()
    # e = 0 is zero, e >= 1 is 2^(e-1); sign at the MSB.
    assert parse_format("pot4").levels()[:8] == (0, 1, 2, 4, 8, 16, 32, 64)
    assert parse_format("pot4").levels()[8:] == (0, -1, -2, -4, -8, -16, -32, -64)


@pytest.mark.parametrize("spec, expected", [
    ("apot3", [0, 1, 2, 4]),
    ("apot4", [0, 1, 2, 3, 4, 6, 8, 10]),
    ("apot5", [0, 1, 2, 3, 4, 6, 8, 9, 12, 16, 18, 24, 32, 33, 36, 48]),
    ("sp2-4", [0, 1, 2, 4, 5, 6, 8]),
])
def test_reference_level_sets(spec, expected):
    assert magnitudes(spec) == expected


def test_apot_term_sets_follow_reference_construction():
    assert parse_format("apot4").term_sets == ((0, 1, 4, 8), (0, 2))
    assert parse_format("apot5").term_sets == ((0, 2, 8, 32), (0, 1, 4, 16))
    # Odd B = 5 (apot6): three terms, the reference's special case.
    assert parse_format("apot6").term_sets == ((0, 2, 16, 64), (0, 1, 8, 32), (0, 4))
    # B = 6 (apot7): families 2^-(3i+1), 2^-(3i+2), 2^-(3i+3).
    assert parse_format("apot7").term_sets == ((0, 4, 32, 256), (0, 2, 16, 128),
                                               (0, 1, 8, 64))
    assert parse_format("sp2-4").term_sets == ((0, 1, 2, 4), (0, 4))


def test_upot_equals_apot4():
    upot = parse_format("upot:{0,1,4,8}+{0,2}")
    assert upot.levels() == parse_format("apot4").levels()
    assert str(upot) == "upot:{0,1,4,8}+{0,2}"


def test_field_layout():
    fmt = parse_format("upot:{0,1,4,8}+{0,2}+{0,16,32}")
    assert [(f.offset, f.width) for f in fmt.fields] == [(0, 2), (2, 1), (3, 2)]
    assert fmt.sign_bit == 5 and fmt.bits == 6
    # A three-element set uses 2 bits; index 3 is past the end and saturates.
    assert fmt.fields[2].table == (0, 16, 32, 32)
    assert fmt.fields[2].shifts == (None, 4, 5, 5)
    code = (1 << 5) | (2 << 3) | (1 << 2) | 3       # -(32 + 2 + 8)
    assert fmt.levels()[code] == -42


def test_negative_zero_decodes_to_zero_and_encodes_canonically():
    fmt = parse_format("apot4")
    assert fmt.decode([1 << 3]).tolist() == [0]
    assert fmt.encode([0]).tolist() == [0]


def test_unsigned_upot():
    fmt = parse_format("upot:u{0,1}+{0,2}")
    assert not fmt.signed and fmt.sign_bit is None and fmt.bits == 2
    assert fmt.levels() == (0, 1, 2, 3)


def test_min_max():
    assert (parse_format("int8").min_level, parse_format("int8").max_level) == (-128, 127)
    assert parse_format("apot5").max_abs == 48
    assert parse_format("upot:u{1,2}+{0,4}").min_level == 1


# --- parsing --------------------------------------------------------------------------

@pytest.mark.parametrize("spec", ALL_SPECS)
def test_canonical_spec_round_trip(spec):
    fmt = parse_format(spec)
    assert parse_format(str(fmt)) == fmt
    assert str(parse_format(str(fmt))) == str(fmt)


def test_case_and_space_insensitive():
    assert parse_format("APOT4") == parse_format("apot4")
    assert parse_format("UPOT:{0, 1, 4, 8} + {0, 2}") == parse_format("upot:{0,1,4,8}+{0,2}")
    assert parse_format("Int8") == IntFormat(8, True)


def test_parse_accepts_format_objects():
    fmt = parse_format("pot4")
    assert parse_format(fmt) is fmt


@pytest.mark.parametrize("spec, words", [
    ("pot1", ["pot1", "2..6"]),
    ("pot7", ["pot7", "2..6"]),
    ("int1", ["int1", "2..32"]),
    ("uint33", ["uint33", "2..32"]),
    ("apot2", ["apot2", "3..7"]),
    ("apot8", ["apot8", "3..7"]),
    ("sp2-9", ["sp2-9", "3..8"]),
    ("upot:{0,3}", ["upot:{0,3}", "3", "power of two"]),
    ("upot:{}", ["empty"]),
    ("upot:{0,1}+{}", ["empty"]),
    ("upot:{0,1,1}", ["repeats"]),
    ("upot:{0,x}", ["non-negative integers"]),
    ("float8", ["float8", "allowed"]),
    ("", ["allowed"]),
])
def test_bad_specs_name_spec_and_allowed(spec, words):
    with pytest.raises(ValueError) as info:
        parse_format(spec)
    for word in words:
        assert word in str(info.value)


def test_bad_spec_type():
    with pytest.raises(TypeError, match="string"):
        parse_format(8)


def test_too_wide_term_format():
    with pytest.raises(ValueError, match="1..16 bits"):
        parse_format("upot:" + "+".join(["{0,1,2,4,8,16,32,64,128}"] * 4))


def test_direct_construction_validates():
    with pytest.raises(ValueError, match="width must be 2..32"):
        IntFormat(40)
    with pytest.raises(ValueError, match="neither 0 nor a power of two"):
        TermFormat(((0, 6),))


# --- decode / encode ------------------------------------------------------------------

@pytest.mark.parametrize("spec", SMALL_SPECS)
def test_decode_matches_levels_and_encode_inverts(spec):
    fmt = parse_format(spec)
    codes = np.arange(2 ** fmt.bits)
    values = fmt.decode(codes)
    assert values.tolist() == [fmt.levels()[c] for c in codes]
    # encode is the exact inverse on representable values ...
    assert (fmt.decode(fmt.encode(values)) == values).all()
    # ... and picks the lowest code of each level.
    reps = fmt.representable()
    assert (fmt.encode(reps) == [list(values).index(v) for v in reps]).all()


@given(st.sampled_from(ALL_SPECS), st.data())
def test_round_trip_property(spec, data):
    fmt = parse_format(spec)
    codes = data.draw(st.lists(st.integers(0, 2 ** fmt.bits - 1), min_size=1, max_size=50))
    values = fmt.decode(codes)
    assert (fmt.decode(fmt.encode(values)) == values).all()
    assert values.min() >= fmt.min_level and values.max() <= fmt.max_level


@pytest.mark.parametrize("spec", ["int4", "uint4", "apot4", "pot4-nz"])
def test_encode_rejects_unrepresentable(spec):
    fmt = parse_format(spec)
    bad = fmt.max_level + 1
    with pytest.raises(ValueError, match="not representable"):
        fmt.encode([0, bad] if fmt.min_level <= 0 else [fmt.max_level, bad])


def test_decode_rejects_bad_codes():
    with pytest.raises(ValueError, match="out of range"):
        parse_format("apot4").decode([16])
    with pytest.raises(ValueError, match="out of range"):
        parse_format("int8").decode([-1])
    with pytest.raises(TypeError, match="integers"):
        parse_format("int8").decode([0.5])
