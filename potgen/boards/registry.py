"""The ECP5 development boards potgen builds for, and what it needs to know of each.

Every board is an :mod:`amaranth_boards` platform plus the facts a build and a user
need: the potgen device whose limits the fit check uses (:mod:`potgen.flow.devices`;
the ULX3S-12F is checked against its own 12F limits, not the 25F die nextpnr places
on), the oscillator, a default clock and array, the host UART (the board's USB-UART
where it has one, documented header pins where it has not), how the status LEDs are
wired to :data:`potgen.hw.host_top.LED_LAYOUT`, a reset button, and the programmer
command.

Board names are lower case (``ulx3s-85f``); :func:`board` also accepts the names
with ``_`` or without the dash before the size (``ulx3s_85f``, ``ulx3s85f``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from amaranth.build import Attrs, Pins, Resource, Subsignal

__all__ = ["Board", "LedPin", "Programmer", "UartPins", "BOARDS", "board", "board_names",
           "DEFAULT_CLOCK_MHZ"]

#: Default accelerator clock of every board. Measured on the ULX3S-85F (nextpnr 0.11,
#: speed 6): 40.9 MHz for 2 x 2 pot4, 37.7 MHz for the 8 x 8 default, limited by the
#: accelerator's requantizer path
#: (MULT18X18D, rounding adder and clamp in one cycle), so 25 MHz leaves margin on
#: every speed grade; ask for more with ``--clock`` when the design allows it. Boards
#: whose oscillator cannot make 25 MHz exactly (OrangeCrab 48 MHz, ECP5-5G EVN 12 MHz)
#: default to 24 MHz.
DEFAULT_CLOCK_MHZ = 25.0


@dataclass(frozen=True)
class LedPin:
    """One LED (or one colour of an RGB LED) and the status bits it shows.

    Members
    -------
    resource : str
        Platform resource (``"led"``, ``"rgb_led"``).
    number : int
        Resource number.
    subsignal : str or None
        ``"r"``, ``"g"`` or ``"b"`` of an RGB LED; None for a plain LED.
    bits : tuple of str
        Fields of :data:`potgen.hw.host_top.LED_LAYOUT` ORed onto the LED.
    label : str
        What the board's silkscreen / manual calls it.
    """

    resource: str
    number: int
    subsignal: str | None
    bits: tuple
    label: str


@dataclass(frozen=True)
class UartPins:
    """Where the host link's UART is.

    Members
    -------
    resource : str
        Platform resource name (``"uart"`` or one potgen adds, ``"potgen_uart"``).
    number : int
        Resource number.
    rx, tx : str
        FPGA ball of the FPGA's receive / transmit pin.
    usb : bool
        True when the board has a USB-UART bridge on these pins (a cable is enough);
        False when an external 3.3 V USB-UART adapter goes on header pins.
    note : str
        How to connect it.
    extra : Resource or None
        Resource potgen adds to the platform for these pins (None: the platform's).
    """

    resource: str
    number: int
    rx: str
    tx: str
    usb: bool
    note: str
    extra: object = None


@dataclass(frozen=True)
class Programmer:
    """How a bitstream goes onto the board.

    Members
    -------
    tool : str
        ``"openFPGALoader"`` or ``"dfu-util"`` (names of :data:`potgen.flow.tools.TOOLS`).
    sram : tuple of str or None
        Arguments before the file that load the FPGA's SRAM (volatile); None when the
        board cannot (the OrangeCrab's DFU bootloader always writes flash).
    flash : tuple of str
        Arguments before the file that write the SPI flash (kept over power cycles).
    file_suffix : str
        Bitstream file the tool takes (``".bit"``).
    note : str
        What the user does first (bootloader button, jumpers, external cable).
    """

    tool: str
    sram: tuple | None
    flash: tuple
    file_suffix: str
    note: str


@dataclass(frozen=True)
class Board:
    """One development board.

    Members
    -------
    name : str
        potgen's name (``"ulx3s-85f"``).
    title : str
        Human name.
    family : str
        Documentation family (``docs/boards/<family>.md``).
    platform_class : type
        The amaranth-boards platform.
    device : str
        potgen device key for the fit check (``"85k"``).
    clock_resource : str
        Oscillator resource.
    oscillator_mhz : float
        Its frequency.
    default_clock_mhz : float
        Accelerator clock of ``potgen build`` without ``--clock``.
    default_array : dict
        ``rows``, ``cols``, ``weight``, ``act``, ``k_max`` of the default design.
    uart : UartPins
    leds : tuple of LedPin
    reset : tuple or None
        ``(resource, number)`` of the button that restarts the design (and its
        self-test), or None.
    programmer : Programmer
    extra_resources : tuple
        Resources potgen adds to the platform (header LED, header UART).
    """

    name: str
    title: str
    family: str
    platform_class: type
    device: str
    clock_resource: str
    oscillator_mhz: float
    default_clock_mhz: float
    default_array: dict
    uart: UartPins
    leds: tuple
    reset: tuple | None
    programmer: Programmer
    extra_resources: tuple = field(default=())

    def platform(self):
        """A fresh platform instance with potgen's extra resources added."""
        platform = self.platform_class()
        if self.extra_resources:
            platform.add_resources(list(self.extra_resources))
        return platform

    @property
    def part(self) -> str:
        """The Lattice part the platform builds for (``"LFE5U-85F"``)."""
        return self.platform_class.device

    @property
    def package(self) -> str:
        return self.platform_class.package

    @property
    def speed(self) -> int:
        return int(self.platform_class.speed)

    def describe(self) -> dict:
        """JSON-ready facts (for reports and ``--list``)."""
        return {"board": self.name, "title": self.title, "family": self.family,
                "part": self.part, "package": self.package, "speed": self.speed,
                "fit_device": self.device, "oscillator_mhz": self.oscillator_mhz,
                "default_clock_mhz": self.default_clock_mhz,
                "default_array": dict(self.default_array),
                "uart": {"rx": self.uart.rx, "tx": self.uart.tx, "usb": self.uart.usb},
                "programmer": self.programmer.tool}


def _array(rows, cols, weight="pot4", act="uint8", k_max=64) -> dict:
    return {"rows": rows, "cols": cols, "weight": weight, "act": act, "k_max": k_max}


# --- families ---------------------------------------------------------------------------

def _ulx3s(size: str, array: dict) -> Board:
    from amaranth_boards import ulx3s
    leds = (
        LedPin("led", 0, None, ("summary",), "D0 (led 0)"),
        LedPin("led", 1, None, ("passed",), "D1"),
        LedPin("led", 2, None, ("failed",), "D2"),
        LedPin("led", 3, None, ("running",), "D3"),
        LedPin("led", 4, None, ("busy",), "D4"),
        LedPin("led", 5, None, ("activity",), "D5"),
        LedPin("led", 6, None, ("link_error",), "D6"),
        LedPin("led", 7, None, ("acc_error",), "D7"),
    )
    return Board(
        f"ulx3s-{size.lower()}", f"Radiona ULX3S ({size})", "ulx3s",
        getattr(ulx3s, f"ULX3S_{size}_Platform"),
        {"12F": "12k", "25F": "25k", "45F": "45k", "85F": "85k"}[size],
        "clk25", 25.0, DEFAULT_CLOCK_MHZ, array,
        UartPins("uart", 0, "M1", "L4", True,
                 "the FT231X on the US1 USB port: one micro-USB cable powers, programs "
                 "and talks to the board (/dev/ttyUSB0 on Linux)"),
        leds, ("button_fire", 0),
        Programmer("openFPGALoader", ("-b", "ulx3s"), ("-b", "ulx3s", "-f"), ".bit",
                   "plug the US1 port; no jumper or button needed"))


def _without_dfu_suffix(platform_class: type) -> type:
    """The OrangeCrab platform without its ``dfu-suffix`` build step.

    amaranth-boards appends a DFU suffix to the bitstream, which needs ``dfu-util``'s
    ``dfu-suffix`` at build time; the bootloader accepts a bitstream without one
    (``dfu-util`` only warns), so a build needs nothing beyond the PyPI tools.
    """
    from amaranth.vendor import LatticePlatform

    class Platform(platform_class):
        @property
        def required_tools(self):
            return LatticePlatform.required_tools.fget(self)

        @property
        def command_templates(self):
            return LatticePlatform.command_templates.fget(self)

    Platform.__name__ = Platform.__qualname__ = platform_class.__name__
    return Platform


def _orangecrab(size: str, array: dict) -> Board:
    from amaranth_boards import orangecrab_r0_2
    # The OrangeCrab's USB port goes to the FPGA itself (no bridge), so the host link
    # uses the Feather header's RX / TX pins with an external 3.3 V adapter.
    uart = Resource("potgen_uart", 0,
                    Subsignal("rx", Pins("0", dir="i", conn=("io", 0))),
                    Subsignal("tx", Pins("1", dir="o", conn=("io", 0))),
                    Attrs(IO_TYPE="LVCMOS33", PULLMODE="UP"))
    leds = (
        LedPin("rgb_led", 0, "r", ("failed", "link_error", "acc_error"), "RGB red"),
        LedPin("rgb_led", 0, "g", ("summary",), "RGB green"),
        LedPin("rgb_led", 0, "b", ("activity",), "RGB blue"),
    )
    return Board(
        f"orangecrab-{size.lower()}", f"Good Things OrangeCrab r0.2 ({size})", "orangecrab",
        _without_dfu_suffix(getattr(orangecrab_r0_2, f"OrangeCrabR0_2_{size}Platform")),
        {"25F": "25k", "85F": "85k"}[size], "clk", 48.0, 24.0, array,
        UartPins("potgen_uart", 0, "N17", "M18", False,
                 "header pins 0 (FPGA RX, ball N17) and 1 (FPGA TX, ball M18) of the "
                 "Feather header, to a 3.3 V USB-UART adapter: adapter TX -> pin 0, "
                 "adapter RX -> pin 1, GND -> GND", uart),
        leds, None,
        Programmer("dfu-util", None, ("-a", "0", "-D"), ".bit",
                   "hold the button while plugging USB in: the LED fades, the DFU "
                   "bootloader (1209:5af0) is waiting; it always writes the SPI flash"),
        (uart,))


def _ecp5_evn() -> Board:
    from amaranth_boards import ecp5_5g_evn
    leds = tuple(LedPin("led", i, None, (name,), f"led {i}") for i, name in enumerate(
        ("summary", "passed", "failed", "running", "busy", "activity", "link_error",
         "acc_error")))
    return Board(
        "ecp5-5g-evn", "Lattice ECP5-5G Evaluation Board (LFE5UM5G-85F)", "ecp5-5g-evn",
        ecp5_5g_evn.ECP55GEVNPlatform, "85k", "clk12", 12.0, 24.0, _array(8, 8),
        UartPins("uart", 0, "P2", "P3", True,
                 "channel B of the FT2232H on the mini-USB port, after the two resistor "
                 "jumpers of the user manual section 6.2 are swapped and the FTDI's "
                 "EEPROM is set to UART mode (github.com/trabucayre/fixFT2232_ecp5evn); "
                 "the port then appears as the second /dev/ttyUSBn"),
        leds, ("rst", 0),
        Programmer("openFPGALoader", ("-b", "ecp5_evn"), ("-b", "ecp5_evn", "-f"), ".bit",
                   "mini-USB port J2; channel A of the FT2232H is JTAG"))


def _ecpix5(size: str, array: dict) -> Board:
    from amaranth_boards import ecpix5
    leds = (
        LedPin("rgb_led", 0, "g", ("summary",), "rgb_led 0 green"),
        LedPin("rgb_led", 0, "r", ("failed",), "rgb_led 0 red"),
        LedPin("rgb_led", 1, "g", ("passed",), "rgb_led 1 green"),
        LedPin("rgb_led", 1, "b", ("running",), "rgb_led 1 blue"),
        LedPin("rgb_led", 2, "b", ("busy",), "rgb_led 2 blue"),
        LedPin("rgb_led", 2, "g", ("activity",), "rgb_led 2 green"),
        LedPin("rgb_led", 3, "r", ("link_error", "acc_error"), "rgb_led 3 red"),
    )
    return Board(
        f"ecpix5-{size.lower()}", f"LambdaConcept ECPIX-5 ({size}, LFE5UM5G)", "ecpix5",
        getattr(ecpix5, f"ECPIX5{size[:2]}Platform"), {"45F": "45k", "85F": "85k"}[size],
        "clk100", 100.0, DEFAULT_CLOCK_MHZ, array,
        UartPins("uart", 0, "R26", "R24", True,
                 "channel B of the FT2232 on the micro-USB port (the second /dev/ttyUSBn)"),
        leds, ("rst", 0),
        Programmer("openFPGALoader", ("-b", "ecpix5"), ("-b", "ecpix5", "-f"), ".bit",
                   "micro-USB port; channel A of the FT2232 is JTAG"))


def _colorlight() -> Board:
    from amaranth_boards import colorlight_5a75b_r7_0
    # The on-board LED and button share their balls with the only free bidirectional
    # pins (J19: the platform's UART), and J1..J8 go through output-only 74HC245
    # buffers; so the UART takes J19 and the status LED an output pin of J1.
    led = Resource("potgen_status_led", 0, Pins("1", dir="o", conn=("j", 1)),
                   Attrs(IO_TYPE="LVCMOS33", DRIVE="4"))
    return Board(
        "colorlight-5a75b", "Colorlight 5A-75B r7.0 (LFE5U-25F)", "colorlight",
        colorlight_5a75b_r7_0.Colorlight_5A75B_R70Platform, "25k", "clk25", 25.0,
        DEFAULT_CLOCK_MHZ,
        _array(8, 8),
        UartPins("uart", 0, "M13", "P11", False,
                 "header J19 to a 3.3 V USB-UART adapter: KEY+ (ball M13, FPGA RX) <- "
                 "adapter TX, DATA_LED- (ball P11, FPGA TX) -> adapter RX, GND -> GND; "
                 "the on-board LED then flickers with the UART traffic"),
        (LedPin("potgen_status_led", 0, None, ("summary",), "external LED on J1 pin 1"),),
        None,
        Programmer("openFPGALoader", ("-c", "ft232"), ("-c", "ft232", "-f"), ".bit",
                   "an external JTAG adapter (FT232H / FT2232 / CMSIS-DAP; change -c) on "
                   "the J27 JTAG pads TCK/TMS/TDI/TDO"),
        (led,))


def _boards() -> dict:
    boards = [
        _ulx3s("12F", _array(4, 4)),
        _ulx3s("25F", _array(8, 8)),
        _ulx3s("45F", _array(8, 8)),
        _ulx3s("85F", _array(8, 8)),
        _orangecrab("25F", _array(8, 8)),
        _orangecrab("85F", _array(8, 8)),
        _ecp5_evn(),
        _ecpix5("45F", _array(8, 8)),
        _ecpix5("85F", _array(8, 8)),
        _colorlight(),
    ]
    return {b.name: b for b in boards}


#: Every board by name, in the order ``--help`` lists them.
BOARDS = _boards()


def board_names() -> list:
    return list(BOARDS)


def board(name) -> Board:
    """The :class:`Board` called ``name`` (or ``name`` itself when it is a Board).

    Raises ``ValueError`` naming the bad value and every known board.
    """
    if isinstance(name, Board):
        return name
    if not isinstance(name, str):
        raise TypeError(f"board: expected a board name, got {name!r}; known boards: "
                        + ", ".join(BOARDS))
    key = name.strip().lower().replace("_", "-")
    if key in BOARDS:
        return BOARDS[key]
    squashed = key.replace("-", "")
    for known in BOARDS:
        if known.replace("-", "") == squashed:
            return BOARDS[known]
    raise ValueError(f"board: {name!r} is not a board potgen knows; known boards: "
                     + ", ".join(BOARDS))
