"""Charts drawn on the server as SVG: no script, and no style attribute (the pages' CSP
forbids inline styles), so colours come from classes in style.css and the rest from
presentation attributes."""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

from markupsafe import Markup, escape

WIDTH, HEIGHT = 600, 220
LEFT, RIGHT, TOP, BOTTOM = 40, 10, 30, 24  # room for the legend and the axes' labels


@dataclass(frozen=True, slots=True)
class Series:
    css_class: str  # its colour, in style.css
    label: str
    values: Sequence[int]


def lines(title: str, days: Sequence[date], series: Sequence[Series]) -> Markup:
    """A line per series over `days`, its y axis from 0 to the largest value."""
    top = max([1, *(value for one in series for value in one.values)])
    width, height = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    step = width / max(len(days) - 1, 1)

    def x(index: int) -> float:
        return round(LEFT + index * step, 1)

    def y(value: int) -> float:
        return round(TOP + height * (1 - value / top), 1)

    bottom, right = TOP + height, LEFT + width
    parts = [
        f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        'aria-labelledby="chart-title" xmlns="http://www.w3.org/2000/svg">',
        f'<title id="chart-title">{escape(title)}</title>',
        f'<line class="axis" x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{bottom}"/>',
        f'<line class="axis" x1="{LEFT}" y1="{bottom}" x2="{right}" y2="{bottom}"/>',
        f'<text x="{LEFT - 6}" y="{TOP + 4}" text-anchor="end">{top}</text>',
        f'<text x="{LEFT - 6}" y="{bottom + 4}" text-anchor="end">0</text>',
    ]
    if days:
        parts += [
            f'<text x="{LEFT}" y="{HEIGHT - 6}">{days[0].isoformat()}</text>',
            f'<text x="{right}" y="{HEIGHT - 6}" text-anchor="end">{days[-1].isoformat()}</text>',
        ]
    for index, one in enumerate(series):
        points = " ".join(f"{x(i)},{y(value)}" for i, value in enumerate(one.values))
        parts.append(
            f'<polyline class="{one.css_class}" points="{points}" fill="none" stroke-width="2"/>'
        )
        # The legend, left to right along the top.
        at = LEFT + index * 140
        parts += [
            f'<line class="{one.css_class}" x1="{at}" y1="12" x2="{at + 20}" y2="12" '
            'stroke-width="3"/>',
            f'<text x="{at + 26}" y="16">{escape(one.label)}</text>',
        ]
    parts.append("</svg>")
    return Markup("".join(parts))  # noqa: S704 (every text in it is escaped above)
