"""The fleet's releases as a chart: per group, one bar of its instances stacked by the release each runs.

Input is the registry's instances (as ``MonitorData.instances`` gives them) and each group's
desired release from the ledger. Instance, group and release strings are written by instances:
untrusted, kept raw for the templates to escape.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from skynet_tasks.monitor.chart_scale import DARK_GREY, GREEN, GREY, PALETTE

WIDTH = 760.0
LABEL_WIDTH = 150.0  # left of the bars: the group's name
ROW = 30.0
BAR = 18.0
TOP = 6.0
LEGEND_ROW = 18.0
STALE = "stale"  # the slice of instances whose heartbeat is too old to say what they run
NONE = "none"  # the slice of instances that report no release


@dataclass(frozen=True)
class Slice:
    """The instances of one group that run one release (or are stale): ``count`` of them, ``width`` units wide."""

    release: str
    label: str
    count: int
    x: float
    width: float
    fill: str
    desired: bool
    title: str


@dataclass(frozen=True)
class GroupBar:
    """One group's row: its slices, desired release first, stale instances last."""

    group: str
    y: float
    total: int
    slices: tuple[Slice, ...]


@dataclass(frozen=True)
class LegendItem:
    """A release's colour and its short name, as the bars use them."""

    label: str
    fill: str
    x: float
    y: float


@dataclass(frozen=True)
class Fleet:
    """The fleet chart: one bar per group (in the order given), all on one scale of instances."""

    width: float
    height: float
    plot_x: float
    plot_width: float
    most: int
    bars: tuple[GroupBar, ...]
    legend: tuple[LegendItem, ...]


def _short(release: str) -> str:
    return release[:12] if release not in (STALE, NONE) else release


def _ordered(counts: Counter[str], desired: str | None) -> list[str]:
    # Desired first (the goal), stale last (unknown), the rest by how many run them.
    def key(release: str) -> tuple[int, int, str]:
        rank = 0 if release == desired else 2 if release == STALE else 1
        return rank, -counts[release], release
    return sorted(counts, key=key)


def fleet_releases(groups: Sequence[str], desired: Mapping[str, str | None],
                   instances: Sequence[Mapping[str, Any]]) -> Fleet:
    """The fleet chart of ``groups`` (plus any group only the registry names, after them, sorted).

    Each instance counts once in its group's bar: under its release, or under ``stale`` when
    its heartbeat is stale. The desired release's slice is green; others take palette colours
    in order of first appearance; stale is grey.
    """
    per_group: dict[str, Counter[str]] = {name: Counter() for name in groups}
    for instance in instances:
        group = str(instance.get("group") or "")
        release = STALE if instance.get("stale") else str(instance.get("release") or NONE)
        per_group.setdefault(group, Counter())[release] += 1
    names = list(groups) + sorted(g for g in per_group if g not in groups)
    most = max((sum(c.values()) for c in per_group.values()), default=0)
    plot_width = WIDTH - LABEL_WIDTH - 16
    unit = plot_width / max(most, 1)
    colours: dict[str, str] = {}
    bars = []
    for row, name in enumerate(names):
        counts, goal = per_group[name], desired.get(name)
        x, slices = LABEL_WIDTH, []
        for release in _ordered(counts, goal):
            if release == goal:
                fill = GREEN
            elif release in (STALE, NONE):
                fill = GREY if release == STALE else DARK_GREY
            else:
                fill = colours.setdefault(release, PALETTE[len(colours) % len(PALETTE)])
            count = counts[release]
            label = _short(release) + (" (desired)" if release == goal else "")
            slices.append(Slice(release, label, count, round(x, 2), round(count * unit, 2), fill, release == goal,
                                f"{name}: {count} instance{'s' if count != 1 else ''} on {label}"))
            x += count * unit
        bars.append(GroupBar(name, TOP + row * ROW, sum(counts.values()), tuple(slices)))
    legend_entries = {(s.label, s.fill): None for bar in bars for s in bar.slices}
    top = TOP + len(bars) * ROW + 8
    per_row = 3
    legend = tuple(LegendItem(label, fill, LABEL_WIDTH + (i % per_row) * 200.0, top + (i // per_row) * LEGEND_ROW)
                   for i, (label, fill) in enumerate(legend_entries))
    rows = (len(legend) + per_row - 1) // per_row
    return Fleet(WIDTH, top + rows * LEGEND_ROW + 4, LABEL_WIDTH, plot_width, most, tuple(bars), legend)
