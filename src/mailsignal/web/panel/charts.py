"""Server-rendered SVG charts for the panel (pure: data in, markup out).

Each chart is an inline `<svg role="img">` with a `<title>` and `<desc>` (what it shows
and how it was computed), coloured through CSS classes only (`person`, `machine`,
`line`: the Content-Security-Policy forbids style attributes), followed by the same
numbers as a table, so nobody needs to see the picture to read it. With no data there
is no picture, only a sentence that says so.

    stacked_bars(days, ...)   events per day, people under machines, one bar a day
    line(points, ...)         a value over time (a lead score), one point per date
    share_bars(rows, ...)     per group, the share of its events made by machines
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime

from markupsafe import Markup, escape

WIDTH, HEIGHT = 640, 220
LEFT, RIGHT, TOP, BOTTOM = 40, 10, 10, 30
PLOT_W, PLOT_H = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM


def _day(value: date | datetime) -> str:
    return f"{value.day} {value:%b}"


def _num(value: float) -> str:
    """A coordinate or value with at most two decimals, no trailing zeros."""
    text = f"{value:.2f}".rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def _open(ident: str, title: str, desc: str) -> str:
    ident = str(escape(ident))
    return (
        f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        f'xmlns="http://www.w3.org/2000/svg" '
        f'aria-labelledby="{ident}-title {ident}-desc">'
        f'<title id="{ident}-title">{escape(title)}</title>'
        f'<desc id="{ident}-desc">{escape(desc)}</desc>'
    )


def _axis(top_value: float) -> str:
    """The baseline, the left axis and its top and zero labels."""
    base = TOP + PLOT_H
    return (
        f'<line class="axis" x1="{LEFT}" y1="{base}" x2="{LEFT + PLOT_W}" y2="{base}"/>'
        f'<line class="axis" x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{base}"/>'
        f'<text x="{LEFT - 4}" y="{TOP + 10}" text-anchor="end">{_num(top_value)}</text>'
        f'<text x="{LEFT - 4}" y="{base}" text-anchor="end">0</text>'
    )


def _empty(message: str) -> Markup:
    return Markup('<p class="chart-empty">{}</p>').format(message)


def stacked_bars(
    days: Sequence[tuple[date, int, int]],
    *,
    title: str = "Events per day",
    desc: str = "Events per day: people's at the bottom of each bar, machines' on top.",
    ident: str = "bars",
    empty: str = "No events yet, so there is nothing to chart.",
) -> Markup:
    """A bar per day of (day, people, machines), people's part at the bottom; bar heights
    are proportional to the day's total against the busiest day."""
    if not days or not any(p + m for _d, p, m in days):
        return _empty(empty)
    most = max(p + m for _d, p, m in days)
    slot = PLOT_W / len(days)
    bar = max(min(slot * 0.7, 40.0), 1.0)
    base = TOP + PLOT_H
    parts = [_open(ident, title, desc), _axis(most)]
    label_every = max(1, len(days) // 8)
    for i, (day, people, machines) in enumerate(days):
        x = LEFT + i * slot + (slot - bar) / 2
        h_people = PLOT_H * people / most
        h_machines = PLOT_H * machines / most
        label = f"{_day(day)}: {people} by people, {machines} by machines"
        parts.append(f"<g><title>{escape(label)}</title>")
        if people:
            parts.append(
                f'<rect class="person" x="{_num(x)}" y="{_num(base - h_people)}" '
                f'width="{_num(bar)}" height="{_num(h_people)}"/>'
            )
        if machines:
            parts.append(
                f'<rect class="machine" x="{_num(x)}" y="{_num(base - h_people - h_machines)}" '
                f'width="{_num(bar)}" height="{_num(h_machines)}"/>'
            )
        parts.append("</g>")
        if i % label_every == 0:
            parts.append(
                f'<text x="{_num(x + bar / 2)}" y="{base + 16}" text-anchor="middle">'
                f"{escape(_day(day))}</text>"
            )
    parts.append("</svg>")
    legend = (
        '<ul class="legend"><li><span class="swatch person"></span>by people</li>'
        '<li><span class="swatch machine"></span>by machines</li></ul>'
    )
    rows = "".join(
        f'<tr><th scope="row">{escape(_day(d))}</th><td class="num">{p}</td>'
        f'<td class="num">{m}</td></tr>'
        for d, p, m in days
        if p or m
    )
    table = (
        f'<details class="chart-data"><summary>{escape(title)}: the numbers</summary>'
        '<div class="table-wrap"><table><thead><tr><th scope="col">Day</th>'
        '<th scope="col" class="num">By people</th><th scope="col" class="num">By machines</th>'
        f"</tr></thead><tbody>{rows}</tbody></table></div></details>"
    )
    return Markup("".join(parts) + legend + table)  # noqa: S704 - every value escaped above


def line(
    points: Sequence[tuple[date | datetime, float]],
    *,
    title: str = "Over time",
    desc: str = "A value over time.",
    ident: str = "line",
    empty: str = "Nothing to chart yet.",
    value_name: str = "Value",
) -> Markup:
    """A line through (date, value) points, evenly spaced in the given order; the y axis
    runs from 0 to the largest value."""
    if not points:
        return _empty(empty)
    top = max(max(v for _d, v in points), 0.0)
    scale = top if top > 0 else 1.0
    step = PLOT_W / max(len(points) - 1, 1)
    base = TOP + PLOT_H
    coords = [
        (LEFT + i * step, base - PLOT_H * max(v, 0.0) / scale) for i, (_d, v) in enumerate(points)
    ]
    parts = [_open(ident, title, desc), _axis(top)]
    path = " ".join(f"{_num(x)},{_num(y)}" for x, y in coords)
    parts.append(f'<polyline class="line" points="{path}"/>')
    label_every = max(1, len(points) // 6)
    for i, ((when, value), (x, y)) in enumerate(zip(points, coords, strict=True)):
        parts.append(
            f'<circle class="point" cx="{_num(x)}" cy="{_num(y)}" r="3">'
            f"<title>{escape(_day(when))}: {_num(value)}</title></circle>"
        )
        if i % label_every == 0 or i == len(points) - 1:
            parts.append(
                f'<text x="{_num(x)}" y="{base + 16}" text-anchor="middle">'
                f"{escape(_day(when))}</text>"
            )
    parts.append("</svg>")
    rows = "".join(
        f'<tr><th scope="row">{escape(_day(d))}</th><td class="num">{_num(v)}</td></tr>'
        for d, v in points
    )
    table = (
        f'<details class="chart-data"><summary>{escape(title)}: the numbers</summary>'
        '<div class="table-wrap"><table><thead><tr><th scope="col">Date</th>'
        f'<th scope="col" class="num">{escape(value_name)}</th></tr></thead>'
        f"<tbody>{rows}</tbody></table></div></details>"
    )
    return Markup("".join(parts) + table)  # noqa: S704 - every value escaped above


def share_bars(
    rows: Sequence[tuple[str, int, int]],
    *,
    title: str = "Machine share",
    desc: str = "For each group, the share of its events made by machines.",
    ident: str = "share",
    empty: str = "No events yet, so there is nothing to chart.",
    group_name: str = "Group",
) -> Markup:
    """Per (label, people, machines), a line of text (the label, the machine share and
    the counts, readable at any width) over a bar whose full width is all its events,
    machines' part first; rows in the order given. The bars are drawings of the text
    beside them (`aria-hidden`); the list is the chart's accessible form."""
    rows = [r for r in rows if r[1] + r[2]]
    if not rows:
        return _empty(empty)
    items = []
    for label, people, machines in rows:
        total = people + machines
        share = machines / total
        bar = ""
        if machines:
            bar += f'<rect class="machine" x="0" y="0" width="{_num(100 * share)}" height="6"/>'
        if people:
            bar += (
                f'<rect class="person" x="{_num(100 * share)}" y="0" '
                f'width="{_num(100 - 100 * share)}" height="6"/>'
            )
        items.append(
            f'<li><span class="share-label">{escape(label)}</span> '
            f'<span class="share-value"><strong>{share:.0%}</strong> by machines '
            f"({machines} of {total} events)</span>"
            f'<svg class="share-bar" viewBox="0 0 100 6" preserveAspectRatio="none" '
            f'aria-hidden="true" focusable="false">{bar}</svg></li>'
        )
    listing = (
        f'<ul class="shares" id="{escape(ident)}" aria-label="{escape(title)}" '
        f'aria-describedby="{escape(ident)}-desc">{"".join(items)}</ul>'
        f'<p class="hint" id="{escape(ident)}-desc">{escape(desc)}</p>'
    )
    legend = (
        '<ul class="legend" aria-hidden="true"><li><span class="swatch machine"></span>'
        'by machines</li><li><span class="swatch person"></span>by people</li></ul>'
    )
    body = "".join(
        f'<tr><th scope="row">{escape(label)}</th><td class="num">{people}</td>'
        f'<td class="num">{machines}</td>'
        f'<td class="num">{machines / (people + machines):.0%}</td></tr>'
        for label, people, machines in rows
    )
    table = (
        f'<details class="chart-data"><summary>{escape(title)}: the numbers</summary>'
        f'<div class="table-wrap"><table><thead><tr><th scope="col">{escape(group_name)}</th>'
        '<th scope="col" class="num">By people</th><th scope="col" class="num">By machines</th>'
        '<th scope="col" class="num">Machine share</th>'
        f"</tr></thead><tbody>{body}</tbody></table></div></details>"
    )
    return Markup(listing + legend + table)  # noqa: S704 - every value escaped above
