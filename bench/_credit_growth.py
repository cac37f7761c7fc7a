"""How the credit benchmark's figures grow with size, and their projection to the district's size."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from _common import fmt_rate, ms, print_table, rate
from _credit_report import RunResult, short_count


@dataclass(frozen=True)
class Figure:
    """A figure followed across sizes; rates are fitted as seconds per item, then turned back."""

    label: str
    value: Callable[[RunResult], float]
    fmt: Callable[[float], str]
    is_rate: bool = False
    intensive: bool = False  # per item or per call, not a total (see fit_and_project)


def _ms(v: float) -> str:
    return f"{ms(v)} ms"


def _secs(v: float) -> str:
    return "n/a" if math.isnan(v) else f"{v:,.1f} s"


GROWTH_FIGURES = (
    Figure("bulk load", lambda r: r.load.total_s, _secs),
    Figure("recompute pass 1 (first scores)", lambda r: r.pass1.seconds, _secs),
    Figure("recompute pass 2 (nothing changed)", lambda r: r.pass2.seconds, _secs),
    Figure("scan floor", lambda r: r.scan_s, _secs),
    Figure(
        "incremental intake",
        lambda r: rate(r.intake.events, r.intake.seconds),
        lambda v: fmt_rate(v, "ev/s"),
        is_rate=True,
        intensive=True,
    ),
    Figure(
        "baseline Ledger.submit",
        lambda r: rate(r.baseline.records, r.baseline.seconds),
        fmt_rate,
        is_rate=True,
        intensive=True,
    ),
    Figure("page p50", lambda r: r.page.page.p50 if r.page.page else math.nan, _ms, intensive=True),
    Figure("page p99", lambda r: r.page.page.p99 if r.page.page else math.nan, _ms, intensive=True),
    Figure("disk per subject", lambda r: r.disk.per_subject, lambda v: f"{v:,.0f} B", intensive=True),
    Figure("disk per event", lambda r: r.disk.per_event, lambda v: f"{v:,.0f} B", intensive=True),
    Figure("database size", lambda r: r.disk.database_bytes / 2**30, lambda v: f"{v:,.2f} GiB"),
    Figure("peak memory, tree PSS", lambda r: r.peak("tree_pss_mib"), lambda v: f"{v:,.0f} MiB"),
    Figure("peak memory, tree RSS", lambda r: r.peak("tree_rss_mib"), lambda v: f"{v:,.0f} MiB"),
)


def _solve(a: list[list[float]], b: list[float]) -> list[float] | None:
    """Gaussian elimination with partial pivoting; None when singular."""
    n = len(b)
    m = [row[:] + [b[i]] for i, row in enumerate(a)]
    for col in range(n):
        pivot = max(range(col, n), key=lambda k: abs(m[k][col]))
        if abs(m[pivot][col]) < 1e-12 * max(1.0, max(abs(x) for x in m[pivot])):
            return None
        m[col], m[pivot] = m[pivot], m[col]
        for k in range(col + 1, n):
            f = m[k][col] / m[col][col]
            for j in range(col, n + 1):
                m[k][j] -= f * m[col][j]
    x = [0.0] * n
    for col in reversed(range(n)):
        x[col] = (m[col][n] - sum(m[col][j] * x[j] for j in range(col + 1, n))) / m[col][col]
    return x


def _line(xs: Sequence[float], ys: Sequence[float]) -> tuple[float, float] | None:
    """Least-squares intercept and slope, or None when every x is the same."""
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    sxx = sum((x - mx) ** 2 for x in xs)
    if sxx <= 0:
        return None
    slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sxx
    return my - slope * mx, slope


def fit_and_project(
    points: Sequence[tuple[int, int, float]], target: tuple[int, int], *, intensive: bool = False
) -> tuple[float, str]:
    """Least squares through (subjects, events, y) and the value at ``target``, with the model used.

    Totals (seconds, bytes, MiB): with three or more sizes at different subject/event ratios,
    y = a + b*S + c*E; sizes on one ratio, y = a + b*E (the projection then assumes the target has
    that ratio, and says so when it has not); one size, proportional to E. Intensive figures (rates,
    latencies, bytes per item) grow with the depth of indexes and the share of the data that no
    longer fits in memory, not with the data itself: y = a + b*ln(E), or the largest size's value.
    """
    pts = [(s / 1e6, e / 1e6, y) for s, e, y in points if not (math.isnan(y) or math.isinf(y))]
    ts, te = target[0] / 1e6, target[1] / 1e6
    if not pts:
        return math.nan, "no data"
    far = te / max(e for _s, e, _y in pts)
    suffix = f" (far: x{far:,.0f} the largest size)" if far > 4 else ""
    ratios = [e / s for s, e, _y in pts]
    if abs((te / ts) / (sum(ratios) / len(ratios)) - 1) > 0.05 and max(ratios) / min(ratios) <= 1.05:
        suffix += " (sizes at another ratio than the target)"
    if intensive:
        fitted = _line([math.log(e) for _s, e, _y in pts], [y for _s, _e, y in pts])
        if fitted is None:
            return pts[-1][2], "as at the largest size" + suffix
        value = fitted[0] + fitted[1] * math.log(te)
        if value < 0:  # a falling fit through noisy points: no negative latencies or sizes
            return 0.0, "a + b*ln E, clamped at 0" + suffix
        return value, "a + b*ln E" + suffix
    if len(pts) >= 3 and max(ratios) / min(ratios) > 1.05:
        rows = [[1.0, s, e] for s, e, _y in pts]
        ata = [[sum(r[i] * r[j] for r in rows) for j in range(3)] for i in range(3)]
        aty = [sum(r[i] * y for r, (_s, _e, y) in zip(rows, pts, strict=True)) for i in range(3)]
        coef = _solve(ata, aty)
        if coef is not None:
            return coef[0] + coef[1] * ts + coef[2] * te, "a + b*S + c*E" + suffix
    fitted = _line([e for _s, e, _y in pts], [y for _s, _e, y in pts])
    if fitted is not None:
        return fitted[0] + fitted[1] * te, "a + b*E" + suffix
    s, e, y = pts[-1]
    return y * te / e, "proportional to E" + suffix


def growth_exponent(points: Sequence[tuple[int, int, float]]) -> float:
    """log(y2/y1) / log(E2/E1) between the two largest sizes: 1 is linear, 0 flat."""
    pts = sorted((e, y) for _s, e, y in points if y > 0 and not math.isnan(y))
    if len(pts) < 2 or pts[-1][0] == pts[-2][0]:
        return math.nan
    (e1, y1), (e2, y2) = pts[-2], pts[-1]
    return math.log(y2 / y1) / math.log(e2 / e1)


def growth(results: Sequence[RunResult], target: tuple[int, int]) -> dict[str, dict[str, Any]]:
    """Per database and figure: the values by size, the fitted projection to ``target``, the exponent."""
    out: dict[str, dict[str, Any]] = {}
    for database in dict.fromkeys(r.database for r in results):
        runs = sorted((r for r in results if r.database == database), key=lambda r: r.events)
        figures: dict[str, Any] = {}
        for fig in GROWTH_FIGURES:
            values = [fig.value(r) for r in runs]
            fitted = [1 / v if fig.is_rate and v > 0 else v for v in values]
            points = [(r.subjects, r.events, v) for r, v in zip(runs, fitted, strict=True)]
            measured = next(
                (v for r, v in zip(runs, values, strict=True) if (r.subjects, r.events) == target), None
            )
            projected, model = fit_and_project(points, target, intensive=fig.intensive)
            if fig.is_rate:
                projected = 1 / projected if projected > 0 else math.nan
            figures[fig.label] = {
                "sizes": [[r.subjects, r.events] for r in runs],
                "values": values,
                "projected": measured if measured is not None else projected,
                "model": "measured" if measured is not None else model,
                "exponent": growth_exponent(
                    [(r.subjects, r.events, v) for r, v in zip(runs, values, strict=True)]
                ),
            }
        out[database] = figures
    return out


def print_growth(
    results: Sequence[RunResult], target: tuple[int, int], table: dict[str, dict[str, Any]]
) -> None:
    """How each figure grows with size, and its value at ``target`` (measured or projected)."""
    for database, figures in table.items():
        runs = sorted((r for r in results if r.database == database), key=lambda r: r.events)
        rows = []
        for fig in GROWTH_FIGURES:
            g = figures[fig.label]
            exponent = g["exponent"]
            rows.append(
                [
                    fig.label,
                    *[fig.fmt(v) for v in g["values"]],
                    "n/a" if math.isnan(exponent) else f"{exponent:.2f}",
                    fig.fmt(g["projected"]),
                    g["model"],
                ]
            )
        print_table(
            f"{database}: growth with size, and the figures at {target[0]:,} subjects / {target[1]:,} events",
            [
                "figure",
                *[r.size for r in runs],
                "exponent",
                f"at {short_count(target[0])}/{short_count(target[1])}",
                "how",
            ],
            rows,
        )
    print(
        "exponent: log(y2/y1)/log(E2/E1) between the two largest sizes (1 = linear in events, "
        ">1 = worse than linear); rates are fitted as seconds per item"
    )
