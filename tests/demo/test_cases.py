"""The case generator: seeded, time-ordered, incidents reported near and soon after."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from yiwang.demo.cases import TEMPLATES, generate
from yiwang.linkage.intake import likely_duplicate, shingles, similarity

PLACES = [(119.02 + i * 0.01, 31.60, f"幸福路{i}号") for i in range(20)]
START = datetime(2025, 1, 1, tzinfo=UTC)


def test_the_same_seed_gives_the_same_reports_in_time_order() -> None:
    a = list(generate(PLACES, 500, start=START, days=30, seed=3))
    b = list(generate(PLACES, 500, start=START, days=30, seed=3))
    assert a == b and len(a) == 500
    assert [c.at for c in a] == sorted(c.at for c in a)
    assert {c.category for c in a} <= set(TEMPLATES)
    repeated = {c.incident for c in a if sum(o.incident == c.incident for o in a) > 1}
    assert repeated  # some incidents are reported more than once


def test_our_duplicate_rule() -> None:
    near = shingles("小区门口垃圾堆放好几天没人清理")
    same = shingles("垃圾堆放好几天没人清理，在小区门口")
    other = shingles("路灯不亮了")
    assert similarity(near, same) > 0.5 > similarity(near, other)
    assert likely_duplicate(80, timedelta(hours=5), 0.0)  # near and recent
    assert not likely_duplicate(200, timedelta(hours=5), 0.1)  # farther, different words
    assert likely_duplicate(200, timedelta(days=3), 0.6)  # farther, the same words
    assert not likely_duplicate(300, timedelta(hours=1), 1.0)  # beyond the radius
    assert not likely_duplicate(10, timedelta(days=8), 1.0)  # beyond the window
