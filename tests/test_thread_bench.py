"""annot.benchmarks.threads: setting parser and the table of tools/bench_threads.py (the measurement itself is
a benchmark, BENCHMARKS.md, never a timed test)."""
from __future__ import annotations

import pytest

from annot.benchmarks.threads import format_table, parse_setting


def test_bench_setting_parser_and_table():
    assert parse_setting("before:") == parse_setting("before:")
    s = parse_setting("t1:TORCH_THREADS=1, OMP_WAIT_POLICY=PASSIVE")
    assert s.name == "t1" and s.env == {"TORCH_THREADS": "1", "OMP_WAIT_POLICY": "PASSIVE"}
    for bad in ("noname", ":X=1", "x:FOO"):
        with pytest.raises(ValueError):
            parse_setting(bad)
    runs = [{"setting": "before", "copies": 1, "rates": [2.0], "threads": (2, 2), "load_before": "1.0 0 0",
             "load_after": "2.0 0 0"},
            {"setting": "before", "copies": 2, "rates": [0.2, 0.4], "threads": (2, 2), "load_before": "2.0 0 0",
             "load_after": "3.0 0 0"},
            {"setting": "after", "copies": 2, "rates": [1.0, 1.0], "threads": (2, 1), "load_before": "2.0 0 0",
             "load_after": "3.0 0 0"}]
    table = format_table(runs).splitlines()
    assert table[2].startswith("| before | 2, 2 | 1 | 2.000")
    assert "| 0.300 (0.200-0.400) | 2 | 0.15 | 0.15 | 2.00-3.00 |" in table[3]
    assert table[4].endswith("| 1.000 (1.000-1.000) | 2 | - | 0.50 | 2.00-3.00 |")
