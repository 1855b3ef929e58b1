"""Features: the values of one event that rules read, built from the declared facts.

A rule names what it reads (`Rule.facts`): a fact an enricher declares ("ua.category",
"net.labels": `model.FactSpec`, gathered into a registry by the enrich pipeline), one of
the event's own `EVENT_FIELDS`, or a `Derived` value worked out from those ("agent"). The
compiler asks for the `Layout` of a rule table: the union of what its enabled rules read,
in a fixed order, and a reader that builds an event's `Features` from its stored facts,
each normalised as declared (`model.FactKind`), or the declared default when missing (a
namespace holding an enricher's `{"error": ...}` has none of its facts). Nothing here
knows any namespace or fact: adding an enricher or a fact adds declarations, not code.

An event's values come in two forms. Its key, a plain tuple in layout order, is what the
reader builds: hashable, and it repeats from event to event (one proxy, one gateway, one
mail client at a time), which is what lets the compiler run the "facts" rules once per
distinct key. `Features`, what rules read by name (`features["ua.category"]`), is a
read-only dict made once per distinct key and shared by every event with that key: a dict
because a lookup by name is then one C call, where a tuple read by name costs a Python
frame per read, and event checks read features on every event.

Why the reader is generated source (as `collections.namedtuple` and `dataclasses` once
generated theirs): ingest rebuilds the events of every touched timeline from stored rows
each batch, so the reader runs for every event every time. Compiled for its layout, it is
one itemgetter call per namespace and one tuple, as cheap as the hand-written reader it
replaced (~0.5 us an event); loops over the declarations, however arranged, measured
2.2-2.6 times slower. Nothing from a declaration is pasted into that source: namespaces,
keys and functions reach it as values, so no name can inject code.
"""

from __future__ import annotations

import itertools
import operator
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, ClassVar, cast

from ..model import STANDARD_FACTS, FactKind, FactRegistry, FactSpec

EVENT_FIELDS = ("kind", "method", "honeypot")
"""The event's own attributes, in every Features: no enricher provides them."""


@dataclass(frozen=True, slots=True)
class Derived:
    """A value worked out from the event and what it `reads`, for rules to read by `name`.

    `compute(event, *values)` gets the normalised values of `reads` in order. It is part
    of Features (and so of what answers are cached on): keep it to values that repeat.
    """

    name: str
    reads: tuple[str, ...]
    compute: Callable[..., Any]
    description: str

    def __post_init__(self) -> None:
        # No dot: a dotted name is an enricher's fact, and the two must never be confused.
        if not self.name.isidentifier() or self.name in EVENT_FIELDS:
            raise ValueError(f"derived value {self.name!r}: a plain name, not an event field")


Read = str | Derived
"""What a rule may name in `Rule.facts`."""


def unknown_reads(registry: FactRegistry, reads: Iterable[Read]) -> list[str]:
    """The names among `reads` (and what their derived values read) that nothing provides."""
    unknown: list[str] = []
    for read in reads:
        for name in read.reads if isinstance(read, Derived) else (read,):
            if name not in EVENT_FIELDS and name not in registry and name not in unknown:
                unknown.append(name)
    return unknown


Key = tuple[Any, ...]
"""An event's values in layout order: what the compiler's caches are keyed on."""
Reader = Callable[[Any], Key]
"""Builds an `events.Event`'s key (typed Any: events.py imports this module, not back)."""


def _read_only(self: Features, *args: Any, **kwargs: Any) -> Any:
    raise TypeError("Features are shared by every event with the same values: read only")


class Features(dict[str, Any]):
    """One event's values, read by name: `features["net.labels"]`, and its `key`.

    Each layout has its own subclass (`Layout.features`), whose `layout` says what it
    holds. One Features serves every event with the same key, so it cannot be changed.
    """

    __slots__ = ("key",)
    layout: ClassVar[Layout]
    key: Key

    def __missing__(self, name: str) -> Any:
        raise KeyError(
            f"{name!r} is not in these features ({', '.join(self)}): a rule reads it "
            "without naming it in its `facts`"
        )

    def __repr__(self) -> str:
        return f"Features({dict.__repr__(self)})"

    __setitem__ = __delitem__ = _read_only
    clear = pop = popitem = setdefault = update = __ior__ = _read_only


MISSING = object()


def _labels(value: Any) -> frozenset[str]:
    return frozenset(value or ())


# What each kind does to a stored value, twice: as a function (None: taken as stored) for
# facts read one at a time, and as an expression for the compiled reader, which saves a
# call per fact per event. tests/classify/test_features.py holds the two to agreement.
KINDS: dict[FactKind, tuple[Callable[[Any], Any] | None, str]] = {
    FactKind.BOOL: (bool, "bool({})"),
    FactKind.STR: (str, "str({})"),
    FactKind.LABELS: (_labels, "frozenset({} or ())"),
    FactKind.ANY: (None, "{}"),
}


Split = tuple[str, str, Any, Callable[[Any], Any] | None]
"""A declared fact as it is read: namespace, key, default, normaliser (None: as stored)."""


def read_fact(facts: Any, split: Split) -> Any:
    """One fact of stored `facts`, as declared (Event.fact inlines this; keep them alike)."""
    namespace, key, default, normalise = split
    space = facts.get(namespace) if isinstance(facts, dict) else None
    value = space.get(key, MISSING) if isinstance(space, dict) else MISSING
    if value is MISSING:
        return default
    return value if normalise is None else normalise(value)


class Layout:
    """What one Features holds, the reader that builds an event's key, and `view`, which
    makes the Features of a key.

    Key order: `EVENT_FIELDS`, then the declared facts read (in registry order, so that
    each namespace is one itemgetter), then the derived values (by name).
    """

    __slots__ = (
        "_derived",
        "_facts",
        "features",
        "names",
        "read",
        "registry",
        "source",
        "split",
    )

    def __init__(self, registry: FactRegistry, reads: Iterable[Read]) -> None:
        reads = list(reads)
        if unknown := unknown_reads(registry, reads):
            raise ValueError(f"no enricher declares {', '.join(unknown)}")
        derived: dict[str, Derived] = {}
        wanted: set[str] = set()
        for read in reads:
            if isinstance(read, Derived):
                if derived.setdefault(read.name, read) != read:
                    raise ValueError(f"two different derived values are named {read.name!r}")
                wanted.update(read.reads)
            else:
                wanted.add(read)
        self.registry = registry
        # Every declared fact, not only those read here: Event.fact reads any of them.
        self.split: dict[str, Split] = {
            name: (
                name.partition(".")[0],
                name.partition(".")[2],
                spec.default,
                KINDS[spec.kind][0],
            )
            for name, spec in registry.items()
        }
        self._facts = [name for name in registry if name in wanted]
        self._derived = [derived[name] for name in sorted(derived)]
        self.names = (*EVENT_FIELDS, *self._facts, *(d.name for d in self._derived))
        namespace = {"__slots__": (), "layout": self}
        self.features = cast(type[Features], type("Features", (Features,), namespace))
        self.read: Reader
        self.read, self.source = self._compile()

    def view(self, key: Key) -> Features:
        """The Features of `key` (the compiler makes one per distinct key and shares it)."""
        features = self.features(zip(self.names, key, strict=True))
        features.key = key
        return features

    def _compile(self) -> tuple[Reader, str]:
        env: dict[str, Any] = {"slow": self._slowly}
        env.update(bool=bool, str=str, frozenset=frozenset)  # KINDS' expressions, as globals
        lines = ["def read(ev):"]
        value = {field: f"ev.{field}" for field in EVENT_FIELDS}  # name -> expression
        if self._facts:
            lines += ["    facts = ev.facts", "    try:"]
            at = 0
            by_namespace = itertools.groupby(self._facts, lambda name: name.partition(".")[0])
            for g, (ns, names) in enumerate(by_namespace):
                keys = [name.partition(".")[2] for name in names]
                env[f"ns{g}"], env[f"get{g}"] = ns, operator.itemgetter(*keys)
                raw = [f"r{at + k}" for k in range(len(keys))]
                lines.append(f"        {', '.join(raw)} = get{g}(facts[ns{g}])")
                at += len(keys)
            # KeyError: a namespace or a fact missing (an enricher's {"error": ...} too);
            # TypeError: a namespace that is not a dict. Both take the declared defaults.
            lines += ["    except (KeyError, TypeError):", "        return slow(ev)"]
            shared = {name for derived in self._derived for name in derived.reads}
            for i, name in enumerate(self._facts):
                value[name] = KINDS[self.registry[name].kind][1].format(f"r{i}")
                if name in shared and value[name] != f"r{i}":  # normalise it only once
                    lines.append(f"    v{i} = {value[name]}")
                    value[name] = f"v{i}"
        out = [value[name] for name in (*EVENT_FIELDS, *self._facts)]
        for k, derived in enumerate(self._derived):
            env[f"d{k}"] = derived.compute
            out.append(f"d{k}(ev, {', '.join(value[name] for name in derived.reads)})")
        lines.append(f"    return ({', '.join(out)},)")
        source = "\n".join(lines) + "\n"
        exec(compile(source, f"<features reader {self.names}>", "exec"), env)  # noqa: S102
        return env["read"], source

    def _slowly(self, ev: Any) -> Key:
        """The reader for events missing a namespace or a fact: each read one by one."""
        value: dict[str, Any] = {field: getattr(ev, field) for field in EVENT_FIELDS}
        for name in self._facts:
            value[name] = read_fact(ev.facts, self.split[name])
        for derived in self._derived:
            value[derived.name] = derived.compute(ev, *(value[name] for name in derived.reads))
        return tuple(value.values())


_LAYOUTS: dict[tuple[tuple[tuple[str, FactSpec], ...], frozenset[Read]], Layout] = {}


def layout_for(registry: FactRegistry, reads: Iterable[Read]) -> Layout:
    """The layout for these reads, shared by every rule table that reads the same: events
    keep their Features between classifications only while the layout is the same one."""
    reads = frozenset(reads)
    key = (tuple(registry.items()), reads)  # by value: each pipeline has its own registry
    layout = _LAYOUTS.get(key)
    if layout is None:
        if len(_LAYOUTS) >= 16:  # one table, one pipeline, in practice; tests vary them
            _LAYOUTS.clear()
        layout = _LAYOUTS[key] = Layout(registry, reads)
    return layout


STANDARD_LAYOUT = Layout(STANDARD_FACTS, STANDARD_FACTS)
"""Every standard fact: what `Event.features` holds when asked outside a classification."""
