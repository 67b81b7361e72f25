"""Numbers given on the command line. Task flags with string defaults are parsed here, so a
bad value is one line (Invoke's own int conversion would print a traceback)."""

from __future__ import annotations

from calicolab.core.errors import UserError


def whole_number(flag: str, text: str | int, minimum: int = 0, example: str = "2") -> int:
    try:
        value = int(str(text).strip())
    except ValueError:
        raise UserError(f"{flag} must be a whole number, not {text!r}: e.g. {flag} {example}") from None
    if value < minimum:
        raise UserError(f"{flag} must be {minimum} or more, not {value}")
    return value
