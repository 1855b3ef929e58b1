"""T-SQL LIKE patterns (what FetchXML `like` takes) -> patterns SQLite and PostgreSQL run.

T-SQL (reference/dataverse.md §2, "Wildcard operators"): `%` any run, `_` one character,
`[abc]` / `[a-f]` one character of a set, `[^abc]` one character not in it, and a
wildcard in brackets (`[%]`, `[_]`, `[[]`) is literal. Neither backend has sets in LIKE,
so a pattern without sets becomes an ANSI LIKE with `\\` as escape character, and one
with sets becomes an anchored regular expression written in the subset PostgreSQL's
ARE and Python's `re` (SQLAlchemy's REGEXP on SQLite) read alike. Patterns are bound
parameters; brackets are never passed through raw.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# `(?s)` means "dot matches newline" to both engines (PostgreSQL: non-newline-sensitive).
_FLAGS = "(?s)"
_ANY_RUN = ".*"
_ANY_ONE = "."


@dataclass(frozen=True)
class Pattern:
    """Exactly one of `like` (ANSI LIKE, escape `\\`) or `regex` (anchored) is set."""

    like: str | None = None
    regex: str | None = None


def _like_literal(char: str) -> str:
    return "\\" + char if char in "%_\\" else char


def _class_member(char: str) -> str:
    return char if char.isalnum() else "\\" + char


def _set(body: str) -> str:
    """The regex class for a T-SQL set body (without brackets), keeping `a-z` ranges."""
    negated = body.startswith("^")
    chars = body[1:] if negated else body
    out: list[str] = []
    i = 0
    while i < len(chars):
        if i + 2 < len(chars) and chars[i + 1] == "-":
            out.append(f"{_class_member(chars[i])}-{_class_member(chars[i + 2])}")
            i += 3
        else:
            out.append(_class_member(chars[i]))
            i += 1
    return "[" + ("^" if negated else "") + "".join(out) + "]"


def _tokens(pattern: str) -> list[tuple[str, str]]:
    """("any"|"one"|"lit"|"set", text) tokens of a T-SQL pattern."""
    out: list[tuple[str, str]] = []
    i = 0
    while i < len(pattern):
        char = pattern[i]
        if char == "%":
            out.append(("any", ""))
        elif char == "_":
            out.append(("one", ""))
        elif char == "[" and (close := pattern.find("]", i + 2)) != -1:
            body = pattern[i + 1 : close]
            i = close
            if len(body) == 1:  # [%] [_] [[] [x]: one literal character
                out.append(("lit", body))
            elif body == "^":  # "[^]" matches a literal caret-free set: treat as literal
                out.append(("lit", "[^]"))
            else:
                out.append(("set", body))
        else:
            out.append(("lit", char))
        i += 1
    return out


def translate(pattern: str) -> Pattern:
    """Translate a T-SQL LIKE pattern. The caller lowercases both sides for case-folding."""
    tokens = _tokens(pattern)
    if all(kind != "set" for kind, _ in tokens):
        like = "".join(
            "%" if kind == "any" else "_" if kind == "one" else "".join(map(_like_literal, text))
            for kind, text in tokens
        )
        return Pattern(like=like)
    parts: list[str] = []
    for kind, text in tokens:
        if kind == "any":
            parts.append(_ANY_RUN)
        elif kind == "one":
            parts.append(_ANY_ONE)
        elif kind == "set":
            parts.append(_set(text))
        else:
            parts.append(re.escape(text))
    return Pattern(regex=_FLAGS + "^" + "".join(parts) + r"\Z")
