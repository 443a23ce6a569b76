"""The table renderer never cuts a figure and never runs past the page."""

from __future__ import annotations

import json
import re

from hypothesis import given, settings
from hypothesis import strategies as st

from bookcast.terminal import Column, json_ready, render_table

FIGURE = st.one_of(
    st.floats(-1e7, 1e7, allow_nan=False).map(lambda x: f"{x:,.2f}"),
    st.integers(0, 10**9).map(lambda n: f"{n:,}"),
    st.from_regex(r"20261127T0557\d\dZ-[a-z]{4,10}-[0-9a-f]{6}", fullmatch=True),
    st.none(),
)


def verdict_columns() -> list[Column]:
    return [Column("symbol", align="left"), Column("strategy", align="left"),
            Column("trades"), Column("gross edge", "USDT"), Column("spread", "USDT"),
            Column("fees", "USDT"), Column("net PnL", "USDT"),
            Column("net/trade 95% CI", "bps"), Column("break-even fee", "bps"),
            Column("verdict", align="left")]


@settings(max_examples=60, deadline=None)
@given(n_cols=st.integers(1, 12), n_rows=st.integers(0, 6), width=st.integers(30, 160),
       data=st.data())
def test_every_cell_appears_whole_and_no_line_passes_the_width(n_cols, n_rows, width, data):
    cols = [Column(f"column {i}", unit=data.draw(st.sampled_from([None, "bps", "USDT"])))
            for i in range(n_cols)]
    rows = [[data.draw(FIGURE) for _ in cols] for _ in range(n_rows)]
    text = render_table(cols, rows, title="a title " * 20, width=width)
    longest_cell = max((len(c) for r in rows for c in r if c), default=0)
    longest_header = max(len(c.header) for c in cols)
    for line in text.splitlines():
        # only the vertical layout may exceed the page, and only by a value that is
        # itself wider than the page
        assert len(line) <= max(width, longest_header + 2 + longest_cell), line
    assert "…" not in text
    tokens = set(re.split(r"\s{2,}|\n", text))
    for row in rows:
        for cell in row:
            assert (cell or "-") in text
            if cell and " " not in cell:
                assert any(cell in t for t in tokens)


def test_a_table_of_key_columns_wider_than_the_page_still_shows_its_cells():
    # found by the property above: one column whose cell is wider than the page printed
    # the title and nothing else
    run_id = "20261127T055700Z-aaaaaaa-000000"
    text = render_table([Column("run")], [[run_id]], title="runs", width=30)
    assert any(run_id in line for line in text.splitlines())
    text = render_table([Column("symbol"), Column("run")], [["BTCUSDT", run_id]], width=30,
                        keys=2)
    assert "BTCUSDT" in text and run_id in text


def test_a_wide_table_at_100_columns_splits_into_panels_that_repeat_the_key_columns():
    rows = [["BTCUSDT", "lightgbm", "70", "-12.31", "-239.55", "140.00", "-391.86",
             "[-2.11, -1.80]", "3.21", "loses"],
            ["BTCUSDT", "(always_flat)", "0", None, None, None, None, None, None, "no trades"]]
    text = render_table(verdict_columns(), rows, width=100, keys=2)
    assert max(len(line) for line in text.splitlines()) <= 100
    panels = text.split("\n\n")
    assert len(panels) >= 2
    for panel in panels:
        assert panel.count("BTCUSDT") == 2 and "(always_flat)" in panel
    for figure in ("-239.55", "[-2.11, -1.80]", "-391.86", "3.21", "no trades"):
        assert figure in text
    # headers carry their units
    assert "(USDT)" in text and "(bps)" in text


def test_a_table_that_fits_is_one_panel_with_right_aligned_figures():
    text = render_table([Column("run", align="left"), Column("net", "bps")],
                        [["r-1", "1.5"], ["r-22", "-10.25"]], width=100)
    lines = text.splitlines()
    assert lines[0].split() == ["run", "net", "(bps)"]
    assert lines[2].endswith("   1.5") and lines[3].endswith("-10.25")
    assert len({len(line) for line in lines[2:]}) == 1  # figures line up on the right


def test_a_page_too_narrow_for_any_panel_gives_one_block_per_row():
    text = render_table(verdict_columns(), [["BTCUSDT", "deeplob", "9", "1.00", "2.00",
                                            "3.00", "-4.00", "[-1.0, 0.5]", "2.5", "inconclusive"]],
                        width=24, keys=2)
    assert "net PnL (USDT)" in text and "inconclusive" in text
    assert any(line.startswith("strategy") and line.endswith("deeplob")
               for line in text.splitlines())


def test_json_ready_turns_nan_into_null_and_numpy_into_numbers():
    import numpy as np

    payload = json_ready({"a": float("nan"), "b": np.float64(1.5), "c": (np.int64(2), None)})
    assert json.loads(json.dumps(payload)) == {"a": None, "b": 1.5, "c": [2, None]}
