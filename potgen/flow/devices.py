"""The Lattice ECP5 devices potgen synthesizes for, with their resource limits.

nextpnr-ecp5 checks utilisation against its chip database, which is exact for the
LFE5U-25F, -45F and -85F. It has no database of its own for the LFE5U-12F: ``--12k``
places on the 25F die (the 12F is a 25F die fused down to fewer resources, with the
12F's IDCODE), so nextpnr would happily "fit" a design that the real 12F cannot hold.
potgen therefore checks every device's limits itself (:func:`check_fit`) and the 12F
limits come from the data sheet, not from nextpnr.

Sources
-------
* LUT4 / FF, MULT18X18D and DP16KD of the 25F / 45F / 85F: nextpnr-ecp5 0.11's
  ``--report`` ``utilization.{TRELLIS_COMB,TRELLIS_FF,MULT18X18D,DP16KD}.available``
  (24,288 / 43,848 / 83,640 LUT4; 28 / 72 / 156 MULT18X18D; 56 / 108 / 208 DP16KD).
* LFE5U-12F: Lattice, *ECP5 and ECP5-5G Family Data Sheet* (FPGA-DS-02012, DS1044),
  Table 1.1 "ECP5 and ECP5-5G Family Selection Guide": 12K LUTs, 32 sysMEM EBR blocks
  (576 Kb), 28 18x18 multipliers. The data sheet gives the LUT count only rounded to
  thousands, so potgen uses 12,000 LUT4 and 12,000 FF (the conservative reading; for
  the 25F the same table says 24K where the die has 24,288).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Device", "DEVICES", "PACKAGES", "SPEEDS", "device", "check_package",
           "check_speed", "check_fit"]


@dataclass(frozen=True)
class Device:
    """One ECP5 device and the limits potgen checks a design against.

    Members
    -------
    key : str
        Short name used by potgen's options (``"85k"``).
    part : str
        Lattice part name without speed / package (``"LFE5U-85F"``).
    nextpnr_flag : str
        nextpnr-ecp5 device option (``"--85k"``).
    lut4, ff, mult18, dp16kd : int
        Usable LUT4 sites, flip-flops, MULT18X18D and DP16KD blocks.
    packages : tuple of str
        Package names nextpnr accepts for this device; the first is the default.
    limits_source : str
        Where the limits come from.
    """

    key: str
    part: str
    nextpnr_flag: str
    lut4: int
    ff: int
    mult18: int
    dp16kd: int
    packages: tuple
    limits_source: str

    @property
    def default_package(self) -> str:
        return self.packages[0]

    def limits(self) -> dict:
        """``{resource: limit}`` in the keys of a report's ``resources``."""
        return {"lut4_sites": self.lut4, "ff": self.ff, "mult18": self.mult18,
                "dp16kd": self.dp16kd}


_NEXTPNR = "nextpnr-ecp5 0.11 chip database (--report utilization.*.available)"
_DS1044 = "Lattice FPGA-DS-02012 (DS1044) Table 1.1: 12K LUTs, 32 EBR, 28 MULT18X18"

#: Devices by potgen's short name.
DEVICES = {d.key: d for d in [
    Device("12k", "LFE5U-12F", "--12k", 12_000, 12_000, 28, 32,
           ("CABGA381", "CABGA256", "CSFBGA285", "TQFP144"), _DS1044),
    Device("25k", "LFE5U-25F", "--25k", 24_288, 24_288, 28, 56,
           ("CABGA381", "CABGA256", "CSFBGA285", "TQFP144"), _NEXTPNR),
    Device("45k", "LFE5U-45F", "--45k", 43_848, 43_848, 72, 108,
           ("CABGA381", "CABGA256", "CSFBGA285", "CABGA554", "TQFP144"), _NEXTPNR),
    Device("85k", "LFE5U-85F", "--85k", 83_640, 83_640, 156, 208,
           ("CABGA381", "CSFBGA285", "CABGA554", "CABGA756"), _NEXTPNR),
]}

#: Every package name any device accepts.
PACKAGES = tuple(sorted({p for d in DEVICES.values() for p in d.packages}))

#: ECP5 speed grades (8 is the fastest).
SPEEDS = (6, 7, 8)


def device(name) -> Device:
    """The :class:`Device` for ``"85k"``, ``"LFE5U-85F"``, ``85`` or a :class:`Device`.

    Raises ``ValueError`` naming the bad value and the devices allowed.
    """
    if isinstance(name, Device):
        return name
    text = str(name).strip().lower()
    for dev in DEVICES.values():
        if text in (dev.key, dev.key[:-1], dev.part.lower(), dev.part.lower()[:-1]):
            return dev
    raise ValueError(f"device: {name!r} is not an ECP5 device potgen knows; allowed: "
                     + ", ".join(f"{d.key} ({d.part})" for d in DEVICES.values()))


def check_package(dev: Device, package) -> str:
    """The package name (upper case) or the device's default when ``package`` is None."""
    if package is None:
        return dev.default_package
    text = str(package).strip().upper()
    if text not in dev.packages:
        raise ValueError(f"package: {package!r} is not a package of the {dev.part}; "
                         f"allowed: {', '.join(dev.packages)}")
    return text


def check_speed(speed) -> int:
    """The speed grade as an int; ``ValueError`` unless it is 6, 7 or 8."""
    if isinstance(speed, bool) or not isinstance(speed, (int, str)):
        raise TypeError(f"speed: expected 6, 7 or 8, got {speed!r}")
    try:
        value = int(speed)
    except ValueError:
        value = None
    if value not in SPEEDS:
        raise ValueError(f"speed: {speed!r} is not an ECP5 speed grade; allowed: 6, 7, 8")
    return value


def check_fit(dev: Device, used: dict) -> list:
    """Resources of ``used`` that exceed ``dev``'s limits.

    ``used`` maps the keys of :meth:`Device.limits` to counts (missing keys count as
    0). Returns a list of human-readable lines, empty when the design fits.
    """
    lines = []
    names = {"lut4_sites": "LUT4 sites", "ff": "FF", "mult18": "MULT18X18D",
             "dp16kd": "DP16KD"}
    for key, limit in dev.limits().items():
        count = int(used.get(key) or 0)
        if count > limit:
            lines.append(f"{names[key]} {count} > {limit} available on the {dev.part}")
    return lines
