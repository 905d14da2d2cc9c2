"""Typed progress events shared by training, transfer and interpolation.

Long work in lt_core is a generator of these small dataclasses; the app, the CLI and the tests
consume the same events. The last event of every generator carries its result.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable


@dataclass
class Finished:
    """The final event of a generator; ``result`` is what the work produced."""

    result: Any
    elapsed: float = 0.0


def run_to_end(events: Iterable[Any]) -> Any:
    """Consume a progress generator and return the result of its ``Finished`` event."""
    result = None
    for event in events:
        if isinstance(event, Finished):
            result = event.result
    return result

