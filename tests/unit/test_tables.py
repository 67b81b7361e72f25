"""The one table renderer (calicolab/core/tables.py): padding, alignment, truncation, rules,
footers, and loud refusals of rows that do not fit the columns."""

from __future__ import annotations

import pytest

from calicolab.core.tables import Column, render


def test_columns_are_padded_to_their_widest_cell_and_left_aligned():
    lines = render(("name", "node"), [("etcd", "node1"), ("calico-node", "n2")]).splitlines()
    assert lines == ["name         node",
                     "-----------------",
                     "etcd         node1",
                     "calico-node  n2"]


def test_right_aligned_columns_line_up_the_numbers_header_included():
    lines = render(("stage", Column("seconds", align="right")), [("up", "11.2"), ("verify", "103.0")]).splitlines()
    assert lines == ["stage   seconds",
                     "---------------",
                     "up         11.2",
                     "verify    103.0"]
    assert {len(line) for line in lines} == {15}  # right-aligned last column: padded on the left only


def test_no_line_ends_in_spaces_even_with_an_empty_last_cell():
    text = render(("check", "result", "fix"), [("MTU", "pass", ""), ("BGP", "fail", "allow TCP 179"), ("x", "", "")],
                  footer=[("total", "", "")])
    assert all(line == line.rstrip() for line in text.splitlines())
    assert text.splitlines()[2] == "MTU    pass"


def test_the_rule_underlines_the_header_line():
    lines = render(("a", "bb", "ccc"), [("1", "2", "3")], rule="=").splitlines()
    assert lines[0] == "a  bb  ccc" and lines[1] == "=" * len(lines[0])
    wide = render(("a", "b"), [("longer cell", "x")]).splitlines()
    assert len(wide[1]) == len(wide[0]) == len("longer cell  b")


def test_footer_rows_follow_a_second_rule_and_count_for_the_widths():
    lines = render(("stage", Column("s", align="right")), [("up", "1.0")],
                   footer=[("total (all)", "12.5")]).splitlines()
    # widths 11 ("total (all)") and 4 ("12.5"), two spaces apart: 17 characters a line
    assert lines == ["stage" + " " * 11 + "s",
                     "-" * 17,
                     "up" + " " * 12 + "1.0",
                     "-" * 17,
                     "total (all)  12.5"]


def test_no_rows_gives_the_header_and_its_rule():
    assert render(("check", "node"), []) == "check  node\n-----------"
    assert render(("check", "node"), [], footer=()) == "check  node\n-----------"


def test_a_cell_wider_than_max_width_is_cut_with_an_ellipsis():
    seen = Column("seen", max_width=10)
    lines = render(("check", seen, "fix"), [("MTU", "1500 on eth1 and 1440 on tunl0", "lower it"),
                                             ("BGP", "short", "-")]).splitlines()
    assert lines[2] == "MTU    1500 on...  lower it"
    assert lines[3] == "BGP    short       -"
    assert len("1500 on...") == 10


def test_a_column_narrower_than_max_width_is_not_widened():
    lines = render(("a", Column("seen", max_width=60)), [("x", "ok")]).splitlines()
    assert lines[0] == "a  seen" and lines[2] == "x  ok"


def test_a_header_wider_than_max_width_is_cut_too():
    assert render((Column("a very long name", max_width=6), "b"), [("x", "y")]).splitlines()[0] == "a v...  b"


@pytest.mark.parametrize("rows,error,message", [
    ([("only one",)], ValueError, "has 1 cell"),
    ([("a", "b", "c")], ValueError, "has 3 cell"),
    ([("up", 11.2)], TypeError, "cells are strings"),
])
def test_rows_that_do_not_fit_the_columns_are_refused(rows, error, message):
    with pytest.raises(error, match=message):
        render(("stage", "seconds"), rows)


def test_bad_columns_are_refused():
    with pytest.raises(ValueError, match="max_width must be more than 3"):
        Column("seen", max_width=3)
    with pytest.raises(ValueError, match="align must be 'left' or 'right'"):
        Column("seen", align="centre")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="at least one column"):
        render((), [])
    with pytest.raises(ValueError, match="one character"):
        render(("a",), [], rule="--")
