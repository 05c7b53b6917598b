"""A cache of synthesis reports, keyed by what determines the result.

A report depends on the design, the flow's options (device, package, speed, seed,
target frequency, whether it was placed, the harness) and the tools' versions.
:func:`key` hashes exactly those (SHA-256 of a canonical JSON), so a changed
generator, option or tool gives a new key and a stale report is never reused.

The design enters the key as its RTLIL, Amaranth's own netlist from which the
Verilog is generated deterministically (the key also holds the versions of Amaranth
and of the yosys it converts with). Hashing the RTLIL instead of the Verilog text is
equivalent and lets a cached report come back without paying for a Verilog
conversion (about half a second per design); the Verilog is emitted only on a miss.

The cache lives in ``$POTGEN_CACHE_DIR`` if set, else ``~/.cache/potgen`` (with
``$XDG_CACHE_HOME`` honoured); reports are files ``synth/<k[:2]>/<k>.json``, written
atomically (a temporary file renamed into place), so parallel runs never see a torn
entry.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path

__all__ = ["SCHEMA", "cache_dir", "key", "load", "store", "memo"]

#: Bumped whenever the report schema or the flow's scripts change meaning.
SCHEMA = "potgen-synth-4"


def cache_dir() -> Path:
    """The cache directory (not created)."""
    env = os.environ.get("POTGEN_CACHE_DIR")
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "potgen"


def key(design: str, options: dict, tools: dict) -> str:
    """SHA-256 (hex) of the design text, the flow options and the tool versions."""
    doc = json.dumps({"schema": SCHEMA, "design": design, "options": options,
                      "tools": tools}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(doc.encode()).hexdigest()


def _path(k: str) -> Path:
    return cache_dir() / "synth" / k[:2] / f"{k}.json"


def load(k: str) -> dict | None:
    """The cached report for key ``k``, or None (missing or unreadable entries miss)."""
    try:
        with open(_path(k)) as f:
            report = json.load(f)
    except (OSError, ValueError):
        return None
    return report if isinstance(report, dict) else None


def _write_atomic(path: Path, doc) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".json")
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(doc, f, indent=1, sort_keys=True)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def store(k: str, report: dict) -> Path:
    """Write ``report`` under key ``k`` atomically; returns its path."""
    path = _path(k)
    _write_atomic(path, report)
    return path


def memo(table: str, k: str, compute):
    """A small persistent memo: ``compute()`` once per key ``k`` of ``table``.

    Used for values that are slow to get but fixed for a given installation (a
    tool's version line costs a WebAssembly start-up of a second or two). The result
    must be JSON; an unreadable memo is recomputed, never an error.
    """
    path = cache_dir() / f"{table}.json"
    try:
        with open(path) as f:
            data = json.load(f)
        if not isinstance(data, dict):
            data = {}
    except (OSError, ValueError):
        data = {}
    if k in data:
        return data[k]
    value = compute()
    data[k] = value
    try:
        _write_atomic(path, data)
    except OSError:
        pass  # a read-only cache only costs the recomputation next time
    return value
