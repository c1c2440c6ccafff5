"""The benchmark as a picture: a grouped horizontal-bar chart, one group per scenario and one bar
per app, each the median req/s of the app's rounds, as a stand-alone SVG document (bench/run.py
writes it beside result.json)."""

import math
from collections.abc import Sequence
from typing import Any
from xml.sax.saxutils import escape

# Okabe-Ito, which colour-blind readers tell apart; the first app (the service) in the strong blue.
PALETTE = ["#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#999999"]
# Horizontal bars leave each req/s label room to the right of its bar, however many apps.
WIDTH, LEFT, RIGHT, BAR = 800, 70, 60, 12


def median(values: list[float]) -> float:
    return sorted(values)[len(values) // 2]


def text(x: float, y: float, body: str, attrs: str = "") -> str:
    return f'<text x="{x:.1f}" y="{y:.1f}" {attrs}>{escape(body)}</text>'


def step_for(maximum: float) -> float:
    """A 1, 2 or 5 times a power of ten giving about five grid lines."""
    power = 10.0 ** math.floor(math.log10(maximum / 5))
    return max(1.0, next(m * power for m in (1, 2, 5, 10) if m * power >= maximum / 5))


def svg(
    runs: list[dict[str, Any]],
    apps: Sequence[str],
    scenarios: Sequence[str],
    title: str,
    note: str = "",
) -> str:
    """A grouped horizontal-bar chart of the median req/s of each app in `apps` for each
    scenario in `scenarios`, as an SVG document."""
    rps: dict[tuple[str, str], float] = {}
    for app in apps:
        for scenario in scenarios:
            found = [float(r["rps"]) for r in runs if r["app"] == app and r["scenario"] == scenario]
            if found:
                rps[app, scenario] = median(found)
    out = [text(WIDTH / 2, 26, title, 'text-anchor="middle" font-size="16" font-weight="bold"')]
    out.append(text(WIDTH / 2, 44, note, 'text-anchor="middle" font-size="11" fill="#555"'))
    # The legend wraps rather than run off the right edge when app names are long.
    x, y = float(LEFT), 64.0
    for i, app in enumerate(apps):
        width = 24 + 6.5 * len(app)
        if x + width > WIDTH - 10 and x > LEFT:
            x, y = float(LEFT), y + 18
        out.append(
            f'<rect x="{x}" y="{y - 9}" width="10" height="10" fill="{PALETTE[i % len(PALETTE)]}"/>'
        )
        out.append(text(x + 14, y, app, 'font-size="12"'))
        x += width
    top, group = y + 14, (len(apps) + 1) * BAR
    bottom = top + len(scenarios) * group
    maximum = max(rps.values(), default=0) or 1.0  # no zero-width scale when nothing ran
    step = step_for(maximum)
    ceiling = step * math.ceil(maximum / step)
    scale = (WIDTH - LEFT - RIGHT) / ceiling
    for k in range(round(ceiling / step) + 1):
        gx = LEFT + k * step * scale
        colour = "#888" if k == 0 else "#e3e3e3"
        out.append(
            f'<line x1="{gx:.1f}" y1="{top}" x2="{gx:.1f}" y2="{bottom}" stroke="{colour}"/>'
        )
        out.append(text(gx, bottom + 15, f"{k * step:,.0f}", 'text-anchor="middle" font-size="11"'))
    axis = "req/s (median of the rounds)"
    out.append(
        text(WIDTH / 2, bottom + 31, axis, 'text-anchor="middle" font-size="11" fill="#555"')
    )
    for s, scenario in enumerate(scenarios):
        y0 = top + s * group + BAR / 2
        out.append(text(LEFT - 8, y0 + len(apps) * BAR / 2 + 4, scenario, 'text-anchor="end"'))
        for i, app in enumerate(apps):
            if (app, scenario) not in rps:
                continue
            value, by = rps[app, scenario], y0 + i * BAR
            bar = f'x="{LEFT}" y="{by:.1f}" width="{value * scale:.1f}" height="{BAR - 2}"'
            out.append(f'<rect {bar} fill="{PALETTE[i % len(PALETTE)]}"/>')
            out.append(
                text(LEFT + value * scale + 4, by + BAR - 3, f"{value:,.0f}", 'font-size="10"')
            )
    height = round(bottom + 40)
    return "\n".join(
        [
            f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" '
            f'viewBox="0 0 {WIDTH} {height}" font-family="sans-serif" font-size="12">',
            f'<rect width="{WIDTH}" height="{height}" fill="white"/>',
            *out,
            "</svg>\n",
        ]
    )
