"""instrument/html.py: which links of an HTML document are tracked, and how new URLs,
the pixel and the honeypot are spliced into it with every other byte kept."""

from __future__ import annotations

import html
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from instrument.common import (  # type: ignore[import-not-found]
    HONEYPOT,
    HONEYPOT_TAG,
    PIXEL,
    PIXEL_TAG,
    Const,
    Recorder,
    body,
    html_message,
    restore,
    spliced,
)
from mailsignal.instrument import (
    LinkRef,
    extract_links,
    instrument,
    parse_message,
)
from mailsignal.instrument.html import decode_attr, scan_html, splice

# --- which links --------------------------------------------------------------------


@pytest.mark.parametrize(
    "anchor",
    [
        '<a href="mailto:x@example.com">m</a>',
        '<a href="tel:+4930123">t</a>',
        '<a href="sms:+4930123">s</a>',
        '<a href="#top">t</a>',
        '<a href="/relative/path">r</a>',
        '<a href="//cdn.example.com/x">p</a>',
        '<a href="javascript:alert(1)">j</a>',
        '<a href="ftp://files.example.com/x">f</a>',
        '<a href="https:///nohost">n</a>',
        '<a name="x">no href</a>',
        '<a href="https://n.example/1" data-notrack>n</a>',
        '<a href="https://n.example/2" data-notrack="">n</a>',
        "<a href='https://n.example/3' DATA-MAILSIGNAL-NOTRACK='yes'>n</a>",
        '<a clicktracking=off href="https://n.example/4">n</a>',
        '<a href="https://n.example/5" clicktracking="OFF">n</a>',
        '<v:roundrect href="https://n.example/vml-outside-comment">n</v:roundrect>',
        '<!-- <a href="https://n.example/plain-comment">n</a> -->',
        '<link rel="stylesheet" href="https://n.example/style.css">',
        '<style>a { background: url("https://n.example/bg.png") }</style>',
    ],
)
def test_not_trackable_links_are_left_alone(anchor: str) -> None:
    markup = f"<html><body>{anchor}</body></html>"
    msg = html_message(markup)
    rec = Recorder()
    assert extract_links(msg) == []
    assert spliced(markup, rec) == markup
    assert rec.calls == []


@pytest.mark.parametrize(
    ("anchor", "url"),
    [
        ('<a href="https://a.example/x">x</a>', "https://a.example/x"),
        # the scheme in the one spelling the tracker redirects to (#10); the rest as written
        ('<A HREF="HTTPS://A.example/Up">x</A>', "https://A.example/Up"),
        ('<a href=" \n https://a.example/ws \t">x</a>', "https://a.example/ws"),
        ('<a href="https://a.example/wr\r\napped\t">x</a>', "https://a.example/wrapped"),
        ("<area shape=rect coords=0,0,9,9 href=https://a.example/map>", "https://a.example/map"),
        (
            '<a href="https://a.example/?a=1&amp;b=2&#38;c=3&#x26;d=4">x</a>',
            "https://a.example/?a=1&b=2&c=3&d=4",
        ),
        # browsers keep a legacy reference literal before '=' or an alphanumeric
        (
            '<a href="https://a.example/?x=&copy;&copy=1&notit;&reg">x</a>',
            "https://a.example/?x=©&copy=1&notit;®",
        ),
        ('<a href="https://a.example/?a=1" clicktracking="on">x</a>', "https://a.example/?a=1"),
        ('<a title="a > b" href="https://a.example/gt">x</a>', "https://a.example/gt"),
        ("<a href='https://a.example/q?\"x\"'>x</a>", 'https://a.example/q?"x"'),
    ],
)
def test_trackable_link_forms(anchor: str, url: str) -> None:
    msg = html_message(f"<p>{anchor}</p>")
    assert [link.url for link in extract_links(msg)] == [url]


def test_decode_attr_matches_browser_rules() -> None:
    assert decode_attr("?lang=de&region=eu&amp;x=1") == "?lang=de&region=eu&x=1"
    assert decode_attr("&lt;&gt&quot;&#34;&#x27;&unknown;&") == '<>""\'&unknown;&'
    assert decode_attr("a&ampb") == "a&ampb"
    assert decode_attr("a&amp b") == "a& b"


def test_unclosed_anchor_text_ends_at_the_next_anchor() -> None:
    markup = '<p><a href="https://a.example/1">one <a href="https://a.example/2">two</a> three'
    assert [(r.url, r.text) for r in extract_links(html_message(markup))] == [
        ("https://a.example/1", "one"),
        ("https://a.example/2", "two"),
    ]


def test_link_text_is_sanitised_and_area_has_none() -> None:
    markup = (
        '<map name=m><area href="https://a.example/area" alt="Area"></map>'
        '<a href="https://a.example/b"><b>Bold</b>&nbsp;&amp; <i>more</i></a>'
    )
    assert extract_links(html_message(markup)) == [
        LinkRef("https://a.example/area", "", "html"),
        LinkRef("https://a.example/b", "Bold & more", "html"),
    ]


# --- splicing details ---------------------------------------------------------------


def test_rewritten_value_is_escaped_for_each_quoting_style() -> None:
    markup = (
        '<p><a href="https://a.example/?a=1&amp;b=2">dq</a>'
        "<a href='https://b.example/?a=1&amp;b=2'>sq</a>"
        "<a href=https://c.example/?a=1&amp;b=2 class=x>uq</a></p>"
    )
    seen: list[str] = []

    def target(url: str) -> str:
        return url.replace("https://", "https://t.example/r?u=") + '&q="it\'s"<x>'

    def rewrite(url: str) -> str:
        seen.append(url)
        return target(url)

    out = body(instrument(html_message(markup), rewrite, None), "text/html")
    assert seen == [
        "https://a.example/?a=1&b=2",
        "https://b.example/?a=1&b=2",
        "https://c.example/?a=1&b=2",
    ]
    assert out == (
        '<p><a href="https://t.example/r?u=a.example/?a=1&amp;b=2&amp;q=&quot;it&#x27;s&quot;'
        '&lt;x&gt;">dq</a>'
        "<a href='https://t.example/r?u=b.example/?a=1&amp;b=2&amp;q=&quot;it&#x27;s&quot;"
        "&lt;x&gt;'>sq</a>"
        '<a href="https://t.example/r?u=c.example/?a=1&amp;b=2&amp;q=&quot;it&#x27;s&quot;'
        '&lt;x&gt;" class=x>uq</a></p>'
    )
    assert [link.url for link in scan_html(out).links] == [target(u) for u in seen]


def test_non_ascii_rewrite_result_is_percent_encoded() -> None:
    markup = '<a href="https://a.example/">x</a>'
    out = spliced(markup, Const("https://t.example/c/ünï code"))
    assert out == '<a href="https://t.example/c/%C3%BCn%C3%AF%20code">x</a>'


def test_conditional_comment_variants() -> None:
    markup = (
        '<body>\n<!--[if mso]>\n<v:roundrect xmlns:v="urn:schemas-microsoft-com:vml" '
        'href="https://a.example/vml"><w:anchorlock/><center>Go</center></v:roundrect>\n'
        "<![endif]-->\n"
        '<!--[if !mso]><!--><a href="https://a.example/html">Go</a><!--<![endif]-->\n'
        '<!--[if gte mso 9]><v:rect href="https://a.example/rect" fill="true"/><![endif]-->\n'
        '<!--[if (gte mso 9)|(IE)]><table><tr><td><a href="https://a.example/ie">ie</a>'
        "</td></tr></table><![endif]-->\n"
        '<!-- [if mso]><a href="https://a.example/spaced">s</a><![endif] -->\n</body>'
    )
    rec = Recorder()
    out = spliced(markup, rec)
    assert rec.calls == [
        "https://a.example/vml",
        "https://a.example/html",
        "https://a.example/rect",
        "https://a.example/ie",
        "https://a.example/spaced",
    ]
    assert restore(out, rec, {}) == markup
    assert [(r.url, r.text) for r in extract_links(html_message(markup))] == [
        ("https://a.example/vml", "Go"),
        ("https://a.example/html", "Go"),
        ("https://a.example/rect", ""),
        ("https://a.example/ie", "ie"),
        ("https://a.example/spaced", "s"),
    ]


def test_honeypot_without_body_tag_goes_after_head() -> None:
    markup = (
        '<!DOCTYPE html><html><head><title>x</title></head ><p><a href="https://a.example/">a</a>'
    )
    out = splice(markup, scan_html(markup), lambda u: u, PIXEL, HONEYPOT)
    assert out == (
        "<!DOCTYPE html><html><head><title>x</title></head >"
        + HONEYPOT_TAG
        + '<p><a href="https://a.example/">a</a>'
        + PIXEL_TAG
    )
    fragment = "<p>hi</p>"
    assert splice(fragment, scan_html(fragment), str, PIXEL, HONEYPOT) == (
        HONEYPOT_TAG + fragment + PIXEL_TAG
    )
    bare = "<!doctype html>\n<html lang=en>\n<p>hi</p></html>"
    assert splice(bare, scan_html(bare), str, None, HONEYPOT) == (
        "<!doctype html>\n<html lang=en>" + HONEYPOT_TAG + "\n<p>hi</p></html>"
    )
    doctype = "<!doctype html>\n<p>hi</p>"
    assert splice(doctype, scan_html(doctype), str, None, HONEYPOT) == (
        "<!doctype html>" + HONEYPOT_TAG + "\n<p>hi</p>"
    )


def test_pixel_goes_before_the_last_body_end_and_honeypot_is_hidden() -> None:
    markup = "<html><body class=a><p>x</p></body><p>junk</p></BODY ></html>"
    out = splice(markup, scan_html(markup), str, PIXEL, HONEYPOT)
    assert out == (
        "<html><body class=a>"
        + HONEYPOT_TAG
        + "<p>x</p></body><p>junk</p>"
        + PIXEL_TAG
        + "</BODY ></html>"
    )
    trap = scan_html(out)
    assert trap.links == [] and trap.notrack == {HONEYPOT}
    for attribute in ('aria-hidden="true"', 'tabindex="-1"', "display:none!important"):
        assert attribute in HONEYPOT_TAG
    assert HONEYPOT_TAG.endswith('"></a>')  # no text a person could see or hear


def test_pathological_inputs_finish() -> None:
    started = time.perf_counter()
    # unclosed tags at the end are quadratic in HTMLParser.close() before Python 3.13.5
    unclosed = "<p>" + "<a href='https://a.example/" * 50_000
    assert spliced(unclosed) == unclosed
    text = "https://a.example/" + ")" * 200_000 + " " + "x&" * 100_000
    msg = parse_message(("From: a@example.com\n\n" + text).encode())
    assert extract_links(msg) == [LinkRef("https://a.example/", "", "text")]
    markup = (
        "<p>" + '<a href="https://a.example/?x=1&amp;y">x</a>' * 20_000 + "<!--[if mso]>" * 5_000
    )
    rec = Recorder()
    out = spliced(markup, rec)
    assert rec.calls == ["https://a.example/?x=1&y"]
    assert out.count('href="https://t.example/c/0001"') == 20_000
    assert time.perf_counter() - started < 20  # quadratic behaviour would take minutes


_HTMLISH = st.lists(
    st.sampled_from(
        [
            "<a href=",
            '"https://a.example/?a=1&amp;b"',
            "'https://b.example/x'",
            "https://c.example/",
            ">",
            "</a>",
            "<a ",
            "href",
            "=",
            " ",
            "\n",
            "<!--[if mso]>",
            "<![endif]-->",
            "<!--",
            "-->",
            "<v:roundrect href=",
            "<body>",
            "</body>",
            "<style>",
            "</style>",
            "data-notrack",
            "&",
            "x",
            "<",
            '"',
            "'",
            "/",
        ]
    ),
    max_size=40,
).map("".join)


@settings(max_examples=300, deadline=None)
@given(_HTMLISH)
def test_splice_round_trips_on_arbitrary_markup(markup: str) -> None:
    scan = scan_html(markup)
    marker = {link.url: f"https://t.example/{i}" for i, link in enumerate(scan.links)}
    out = splice(markup, scan, lambda u: marker[u])
    if all(link.quoted for link in scan.links):
        restored = out
        for link in sorted(scan.links, key=lambda k: k.start):
            restored = restored.replace(
                html.escape(marker[link.url]), markup[link.start : link.end], 1
            )
        assert restored == markup
    assert [link.url for link in scan_html(out).links] == [marker[x.url] for x in scan.links]
    same = splice(markup, scan, lambda u: u)
    assert [link.url for link in scan_html(same).links] == [link.url for link in scan.links]
