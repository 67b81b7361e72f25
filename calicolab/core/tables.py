"""The one plain-text table renderer of the project (doctor, soak, matrix, bench, upgrades,
lifecycle timings).

Cells are strings: each caller formats its own numbers, so a table never guesses decimals.
Columns are padded to their widest cell (header and footer included) and joined by two
spaces; the last column gets no trailing padding, so no line ends in spaces. The header is
underlined by a rule as long as the header line; footer rows (totals) follow a second rule.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

ELLIPSIS = "..."
GAP = "  "  # two spaces: cells may hold single spaces ("BGP mesh"), so columns split on two or more


@dataclass(frozen=True)
class Column:
    name: str
    align: Literal["left", "right"] = "left"  # right for numbers, so the decimals line up
    max_width: int | None = None  # longer cells are cut to this width, ending in "..."

    def __post_init__(self) -> None:
        if self.align not in ("left", "right"):
            raise ValueError(f"column {self.name!r}: align must be 'left' or 'right', not {self.align!r}")
        if self.max_width is not None and self.max_width <= len(ELLIPSIS):
            raise ValueError(f"column {self.name!r}: max_width must be more than {len(ELLIPSIS)} "
                             f"(room for {ELLIPSIS!r}), not {self.max_width}")

    def fit(self, cell: str) -> str:
        if self.max_width is None or len(cell) <= self.max_width:
            return cell
        return cell[: self.max_width - len(ELLIPSIS)] + ELLIPSIS


def render(columns: Sequence[str | Column], rows: Iterable[Sequence[str]], *,
           footer: Iterable[Sequence[str]] = (), rule: str = "-") -> str:
    """The table as lines joined by newlines: header, rule, rows, then (if any) rule and footer.

    A column given as a plain string is a left-aligned column of that name without a width
    limit. A row with an empty last cell simply ends early (trailing spaces are stripped).
    """
    cols = [c if isinstance(c, Column) else Column(c) for c in columns]
    if not cols:
        raise ValueError("a table needs at least one column")
    if len(rule) != 1:
        raise ValueError(f"rule must be one character, not {rule!r}")
    body = [_cells(cols, row, "row") for row in rows]
    foot = [_cells(cols, row, "footer row") for row in footer]
    head = [c.fit(c.name) for c in cols]
    widths = [max(len(r[i]) for r in (head, *body, *foot)) for i in range(len(cols))]

    def line(cells: list[str]) -> str:
        parts = [cell.rjust(w) if col.align == "right" else cell.ljust(w)
                 for col, cell, w in zip(cols, cells, widths, strict=True)]
        return GAP.join(parts).rstrip()

    header = line(head)
    ruler = rule * len(header)
    out = [header, ruler, *(line(r) for r in body)]
    if foot:
        out += [ruler, *(line(r) for r in foot)]
    return "\n".join(out)


def _cells(cols: list[Column], row: Sequence[str], what: str) -> list[str]:
    # Fail loudly: an unformatted float or a missing cell would silently shift every column after it.
    if len(row) != len(cols):
        raise ValueError(f"{what} {tuple(row)!r} has {len(row)} cell(s), the table has {len(cols)} column(s)")
    for cell in row:
        if not isinstance(cell, str):
            raise TypeError(f"{what} {tuple(row)!r}: cells are strings (format numbers first), not {cell!r}")
    return [col.fit(cell) for col, cell in zip(cols, row, strict=True)]
