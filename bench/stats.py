"""Figures the benches share."""

from __future__ import annotations

from collections.abc import Sequence


def percentile(values: Sequence[float], q: float) -> float:
    """The value below which a share `q` (0–1) of `values` falls: nearest rank, no
    interpolation, so it is always a value that was measured."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]
