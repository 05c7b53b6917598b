"""Exceptions shared by the library and the command line.

Bad parameters raise the built-in ``ValueError`` / ``TypeError`` (the CLI turns them
into a one-line message and exit code 2). A failing external tool raises
:class:`ToolError` (exit code 1).
"""


class ToolError(RuntimeError):
    """An external tool (yosys, nextpnr, Verilator, ...) failed.

    Parameters
    ----------
    tool : str
        The tool's name.
    message : str
        The tool's own message (its last error lines).
    log : str or None
        Path of the full log, when one was written.
    """

    def __init__(self, tool: str, message: str, log: str | None = None):
        self.tool, self.message, self.log = tool, message, log
        text = f"{tool} failed: {message}"
        if log:
            text += f" (log: {log})"
        super().__init__(text)
