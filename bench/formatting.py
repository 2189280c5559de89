"""How a measured number is written for a reader: the one set of formatters behind the terminal summary
(bench/summary.py) and the report's tables (reports/tables.py), so that both print a number the same way.

Plain Python (no torch): the report imports it. A value that is None, NaN or "" is not measured (bench.schema's
`number`) and is written as MISSING.
"""
from __future__ import annotations

import math
import numbers
from typing import Any, Callable

from bench.schema import COUNT_COLUMNS, is_present, number

MISSING = "–"


def fmt_int(value: Any) -> str:
    """A count, with thousands separators: `24,436,369`."""
    return f"{int(round(number(value))):,}" if is_present(value) else MISSING


def fmt_fixed(digits: int) -> Callable[[Any], str]:
    """A fixed number of decimals (a ratio or a score in [0, 1])."""
    def fmt(value: Any) -> str:
        return f"{number(value):.{digits}f}" if is_present(value) else MISSING

    return fmt


def fmt_sig(value: Any) -> str:
    """A measurement: three significant digits, whole numbers from 100 up, an exponent only for the very small
    and the very large (below 1e-3, from 1e6)."""
    if not is_present(value):
        return MISSING
    x = number(value)
    if x != 0 and (abs(x) < 1e-3 or abs(x) >= 1e6):
        return f"{x:.2e}"
    if abs(x) >= 100:
        return f"{x:.0f}"
    return f"{x:.3g}"


def fmt_text(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)) or value == "":
        return MISSING
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


def fmt_interval(value: Any, low: Any = math.nan, high: Any = math.nan, digits: int = 3, signed: bool = False) -> str:
    """`0.790 [0.712, 0.861]`: the point estimate and, where there is one, its interval. The one rule for
    every interval (signed=True for differences: `-0.004 [-0.011, +0.003]`)."""
    if not is_present(value):
        return MISSING
    spec = f"{'+' if signed else ''}.{digits}f"
    text = format(number(value), spec)
    if is_present(low) and is_present(high):
        text += f" [{format(number(low), spec)}, {format(number(high), spec)}]"
    return text


def fmt_value(value: Any, column: str = "") -> str:
    """Any record value by what it is: a count column or an integer as a count, another number as a
    measurement, anything else as text."""
    if hasattr(value, "item") and getattr(value, "shape", None) == ():  # a numpy scalar (a DataFrame's cell)
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return fmt_text(value)
    if column in COUNT_COLUMNS or isinstance(value, int):
        return fmt_int(value)
    return fmt_sig(value)
