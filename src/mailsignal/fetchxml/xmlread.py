"""Safe XML reading: text -> a tree of `Node`s that remember their line and column.

FetchXML arrives from anyone holding an API key, so the reader refuses what XML
parsers are attacked with: any DTD (and so any entity declaration: billion laughs,
external entities), over-long input and over-deep nesting. It uses expat directly,
which reports where each element starts, and never resolves external references.
`defusedxml` is not a dependency; refusing the DOCTYPE outright is stricter.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NoReturn
from xml.parsers import expat

from ..errors import FetchXmlParseError
from . import codes


@dataclass
class Node:
    """One element: its tag, attributes, children, text and 1-based position."""

    tag: str
    attrs: dict[str, str]
    line: int
    column: int
    children: list[Node] = field(default_factory=list)
    text: str = ""


def excerpt(source: str, line: int | None, column: int | None) -> str | None:
    """The source line with a caret under `column` (both 1-based), trimmed to ~100 chars."""
    lines = source.splitlines()
    if not line or line > len(lines):
        return None
    text = lines[line - 1]
    col = max((column or 1) - 1, 0)
    start = max(col - 50, 0)
    shown = text[start : col + 50]
    prefix = "…" if start else ""
    suffix = "…" if col + 50 < len(text) else ""
    return f"  {prefix}{shown}{suffix}\n  {' ' * (len(prefix) + col - start)}^"


def _fail(
    source: str, reason: str, line: int | None, column: int | None, tag: str | None
) -> NoReturn:
    raise FetchXmlParseError(
        f"Invalid XML. {reason}",
        error_code=codes.INVALID_XML,
        line=line,
        column=column,
        element=tag,
        excerpt=excerpt(source, line, column),
    )


class _Builder:
    def __init__(self, source: str, parser: expat.XMLParserType) -> None:
        self.source = source
        self.parser = parser
        self.stack: list[Node] = []
        self.root: Node | None = None

    def _where(self) -> tuple[int, int]:
        return self.parser.CurrentLineNumber, self.parser.CurrentColumnNumber + 1

    def start(self, tag: str, attrs: dict[str, str]) -> None:
        line, column = self._where()
        if len(self.stack) >= codes.MAX_DEPTH:
            _fail(self.source, f"Elements nest deeper than {codes.MAX_DEPTH}.", line, column, tag)
        node = Node(tag, attrs, line, column)
        if self.stack:
            self.stack[-1].children.append(node)
        else:
            self.root = node
        self.stack.append(node)

    def end(self, _tag: str) -> None:
        self.stack.pop()

    def data(self, text: str) -> None:
        if self.stack:
            self.stack[-1].text += text

    def refuse_dtd(self, *_args: object) -> None:
        line, column = self._where()
        _fail(self.source, "A DOCTYPE or entity declaration is not allowed.", line, column, None)


def read(source: str) -> Node:
    """Parse `source` into a `Node` tree, or raise `FetchXmlParseError` (0x80040201)."""
    if len(source) > codes.MAX_INPUT_CHARS:
        _fail(
            source,
            f"The query is longer than {codes.MAX_INPUT_CHARS} characters.",
            None,
            None,
            None,
        )
    if not source.strip():
        _fail(source, "The query is empty.", None, None, None)
    parser = expat.ParserCreate()
    builder = _Builder(source, parser)
    parser.StartElementHandler = builder.start
    parser.EndElementHandler = builder.end
    parser.CharacterDataHandler = builder.data
    # A DTD is the only way to declare entities, so refusing it refuses them all.
    parser.StartDoctypeDeclHandler = builder.refuse_dtd
    parser.EntityDeclHandler = builder.refuse_dtd
    parser.ExternalEntityRefHandler = builder.refuse_dtd  # type: ignore[assignment]
    parser.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)
    try:
        parser.Parse(source.encode("utf-8"), True)
    except expat.ExpatError as exc:
        reason = expat.errors.messages.get(exc.code, "not well-formed") if exc.code else str(exc)
        _fail(source, f"{reason[:1].upper()}{reason[1:]}.", exc.lineno, exc.offset + 1, None)
    except RecursionError:  # pragma: no cover - MAX_DEPTH stops this first
        _fail(source, "Elements nest too deep.", None, None, None)
    assert builder.root is not None  # expat rejects a document without an element
    return builder.root
