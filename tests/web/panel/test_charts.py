"""The panel's SVG charts (web/panel/charts.py): valid SVG with a title and description,
bars proportional to the numbers, the numbers as a table too, no style attributes, and
a sentence instead of a picture when there is nothing to chart."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from datetime import date

from mailsignal.web.panel import charts

SVG = "{http://www.w3.org/2000/svg}"


def _svg(markup: str) -> ET.Element:
    found = re.search(r"<svg.*?</svg>", markup, re.S)
    assert found, markup
    return ET.fromstring(found[0])  # noqa: S314 - our own markup


def test_stacked_bars_are_proportional_and_accessible() -> None:
    days = [(date(2026, 11, 30), 1, 3), (date(2026, 12, 1), 2, 0), (date(2026, 12, 2), 0, 0)]
    markup = str(charts.stacked_bars(days, title="Per day", desc="People and machines.", ident="t"))
    svg = _svg(markup)
    assert svg.get("role") == "img" and svg.get("aria-labelledby") == "t-title t-desc"
    assert svg.find(f"{SVG}title").text == "Per day"  # type: ignore[union-attr]
    assert svg.find(f"{SVG}desc").text == "People and machines."  # type: ignore[union-attr]
    people = [
        float(r.get("height", 0)) for r in svg.iter(f"{SVG}rect") if r.get("class") == "person"
    ]
    machines = [
        float(r.get("height", 0)) for r in svg.iter(f"{SVG}rect") if r.get("class") == "machine"
    ]
    assert len(people) == 2 and len(machines) == 1  # no zero-height rectangles
    # The busiest day (4) fills the plot; 1, 3 and 2 are a quarter, three quarters, half.
    assert machines[0] == charts.PLOT_H * 3 / 4
    assert people == [charts.PLOT_H / 4, charts.PLOT_H / 2]
    # Each bar says its numbers, and the table repeats them (days without events left out).
    titles = [t.text for t in svg.iter(f"{SVG}title")]
    assert "30 Nov: 1 by people, 3 by machines" in titles
    rows = re.findall(
        r'<tr><th scope="row">([^<]+)</th><td class="num">(\d+)</td><td class="num">(\d+)</td>',
        markup,
    )
    assert rows == [("30 Nov", "1", "3"), ("1 Dec", "2", "0")]
    assert "style=" not in markup and "by people" in markup and "by machines" in markup


def test_no_events_is_a_sentence_not_an_empty_picture() -> None:
    for data in ([], [(date(2026, 12, 1), 0, 0)]):
        markup = str(charts.stacked_bars(data, empty="No events yet."))
        assert "<svg" not in markup and markup == '<p class="chart-empty">No events yet.</p>'
    assert "<svg" not in str(charts.line([], empty="Nothing yet."))


def test_line_goes_up_with_the_value_and_escapes_its_words() -> None:
    points = [(date(2026, 11, 1), 0.0), (date(2026, 11, 15), 5.0), (date(2026, 12, 1), 10.0)]
    markup = str(charts.line(points, title="Score <b>", desc="A & B", value_name="Score"))
    svg = _svg(markup)
    assert svg.find(f"{SVG}title").text == "Score <b>"  # type: ignore[union-attr]
    ys = [float(c.get("cy", 0)) for c in svg.iter(f"{SVG}circle")]
    base = charts.TOP + charts.PLOT_H
    assert ys == [base, base - charts.PLOT_H / 2, base - charts.PLOT_H]
    assert "<b>" not in markup and "A &amp; B" in markup
    assert re.findall(r'<th scope="row">([^<]+)</th><td class="num">([^<]+)</td>', markup) == [
        ("1 Nov", "0"),
        ("15 Nov", "5"),
        ("1 Dec", "10"),
    ]
