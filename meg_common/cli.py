"""Command-line helpers shared by every package's subcommands.

`OneLineParser` reports usage errors in one line and accepts negative numbers and number lists as option
values (`--snr-db -5,0,5`, `--snr-db -10:10:10`), which plain argparse takes for options.
`parse_number_list` / `number_list` read `0,2,4` or `start:stop:step` (stop inclusive).
"""

from __future__ import annotations

import argparse
import math
import re

from meg_common.errors import InputError

# A value that starts with '-' and then a digit or '.', like -5, -0.5, -1e-3, -5,0,5 or -10:10:10.
# argparse's own matcher accepts only a single plain number, so `--snr-db -5,0,5` failed with
# "expected one argument".
_NEGATIVE_VALUE = re.compile(r"^-\.?\d[\d.eE+\-,:\s]*$")


class OneLineParser(argparse.ArgumentParser):
    """argparse that reports usage errors as one line (`meg-phy link sweep: error: ...`), exit 2, and takes
    negative numbers and number lists as values (no meg-phy option looks like a negative number)."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._negative_number_matcher = _NEGATIVE_VALUE

    def error(self, message: str) -> None:  # noqa: D401 - argparse API
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def parse_number_list(text: str, name: str = "list") -> list[float]:
    """Parse `0,2,4` or `start:stop:step` (stop inclusive) into floats; InputError if it does not parse."""
    text = text.strip()
    try:
        if ":" in text:
            parts = [float(p) for p in text.split(":")]
            if len(parts) != 3:
                raise ValueError
            start, stop, step = parts
            if step == 0 or (stop - start) * step < 0:
                raise InputError(f"{name} '{text}': step must be non-zero and go from start towards stop")
            count = int(math.floor((stop - start) / step + 1e-9)) + 1
            values = [round(start + i * step, 10) for i in range(count)]
        else:
            values = [float(p) for p in text.split(",") if p.strip() != ""]
    except ValueError as exc:
        if isinstance(exc, InputError):
            raise
        raise InputError(f"{name} '{text}': expected numbers like '0,2,4' or 'start:stop:step'") from None
    if not values or any(not math.isfinite(v) for v in values):
        raise InputError(f"{name} '{text}': expected finite numbers like '0,2,4' or 'start:stop:step'")
    return values


def number_list(name: str):
    """argparse `type=` for parse_number_list, reporting errors as usage errors."""

    def parse(text: str) -> list[float]:
        try:
            return parse_number_list(text, name)
        except InputError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    parse.__name__ = name
    return parse
