"""A command's output as every control plane returns it: capped, with the Router's notes marked."""

from __future__ import annotations

__all__ = ["OUTPUT_CAP", "OutputCapture", "marker"]

OUTPUT_CAP = 1 << 20
"""Bytes of each stream kept; the rest is read, counted and dropped."""


def marker(text: str) -> str:
    """A note the Router adds to a command's output, set apart on its own line."""
    return f"\n[agenttier: {text}]\n"


class OutputCapture:
    """One output stream, kept up to 1 MiB; the rest is read and counted, then dropped."""

    def __init__(self) -> None:
        self.data = bytearray()
        self.dropped = 0

    def add(self, chunk: bytes) -> None:
        """Keep as much of ``chunk`` as fits under the cap; count the rest."""
        room = OUTPUT_CAP - len(self.data)
        self.data += chunk[:room]
        self.dropped += max(0, len(chunk) - room)

    def text(self, stream: str) -> str:
        """What was kept, decoded, with a note of what was dropped from ``stream``."""
        text = self.data.decode("utf-8", errors="replace")
        if self.dropped:
            text += marker(f"{stream} truncated at 1 MiB; {self.dropped} more bytes dropped")
        return text
