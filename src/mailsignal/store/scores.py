"""Lead scores and roll-ups moved by what new and revised events add (incremental).

The arithmetic is engagement.py's and the pipeline decides when (pipeline/tally.py);
this module holds the SQL. `add` adds to some parties' scores and roll-ups in SQL (the
stored score aged to now plus the new points, counters plus or minus, the last engagement
moved later), one statement per table whatever the number of parties, with no party read
first, so concurrent writers add up. `add_followed` counts tracked emails received, as
outgoing mail is recorded. Rebuilding a score from all its events is store/rescore.py's.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection, bindparam, case, func, text, update

from ..engagement import PARTY_COUNTERS, SECONDS_PER_DAY, PartyTally, Weights
from .bulk import executemany, later
from .parties import TABLES, Party
from .types import UtcDateTime


def _aged(table: Any) -> Any:
    """The stored score aged to the bound `b_now` (engagement.advance), in SQLite's SQL:
    `ms_half_power` is registered on every connection by store/db.py."""
    since = table.c.engagementscoreupdatedon
    when = bindparam("b_now", type_=UtcDateTime)
    age = (func.julianday(when) - func.julianday(since)) * SECONDS_PER_DAY
    factor = func.ms_half_power(age, bindparam("b_half_life"))
    return case((since.is_(None), 0.0), else_=table.c.engagementscore * factor)


def add(
    conn: Connection,
    deltas: dict[Party, PartyTally],
    weights: Weights,
    now: datetime,
) -> None:
    """Add to parties' scores and roll-ups what these tallies of new and revised events
    add (each tally's score is its events' points at `now`; counts may be negative; the
    last engagement only moves later). A tally must not take back the last engagement."""
    if conn.dialect.name == "postgresql":
        _pg_add(conn, deltas, weights, now)
        return
    for kind, (table, key) in TABLES.items():
        rows = [
            {
                "b_key": party,
                "b_score": tally.score,
                "b_last": tally.last,
                "b_now": now,
                "b_half_life": weights.half_life_days * SECONDS_PER_DAY,
                **{f"b_{name}": n for name, n in zip(PARTY_COUNTERS, tally.counts, strict=True)},
            }
            for (k, party), tally in deltas.items()
            if k == kind
        ]
        if not rows:
            continue
        stmt = (
            update(table)
            .where(table.c[key] == bindparam("b_key"))
            .values(
                engagementscore=_aged(table) + bindparam("b_score"),
                engagementscoreupdatedon=bindparam("b_now", type_=UtcDateTime),
                lasthumanengagementon=later(
                    table.c.lasthumanengagementon, bindparam("b_last", type_=UtcDateTime)
                ),
                **{name: table.c[name] + bindparam(f"b_{name}") for name in PARTY_COUNTERS},
            )
        )
        executemany(conn, stmt, rows)


def _pg_add(
    conn: Connection, deltas: dict[Party, PartyTally], weights: Weights, now: datetime
) -> None:
    """`add` on PostgreSQL: one UPDATE per table joined to the deltas as arrays (unnest),
    not one UPDATE per party (the per-statement cost was most of a batch's tally). The
    text is put together from the tables' own names; every value is bound."""
    age = (
        "CAST(EXTRACT(EPOCH FROM (CAST(:now AS timestamptz) - t.engagementscoreupdatedon)) "
        "AS double precision)"
    )
    aged = (
        "CASE WHEN t.engagementscoreupdatedon IS NULL THEN 0.0 "
        f"ELSE t.engagementscore * CASE WHEN {age} <= 0 THEN 1.0 "
        f"ELSE power(CAST(0.5 AS double precision), {age} / :half_life) END END"
    )
    for kind, (table, key) in TABLES.items():
        mine = sorted(
            ((p, t) for (k, p), t in deltas.items() if k == kind), key=lambda i: i[0].bytes
        )
        if not mine:
            continue
        counts = ", ".join(f"{c} = t.{c} + v.{c}" for c in PARTY_COUNTERS)
        arrays = ", ".join(f"CAST(:{c} AS integer[])" for c in PARTY_COUNTERS)
        stmt = text(
            f"UPDATE {table.name} AS t SET engagementscore = {aged} + v.score, "  # noqa: S608
            f"engagementscoreupdatedon = CAST(:now AS timestamptz), {counts}, "
            "lasthumanengagementon = CASE WHEN v.last IS NOT NULL AND "
            "(t.lasthumanengagementon IS NULL OR t.lasthumanengagementon < v.last) "
            "THEN v.last ELSE t.lasthumanengagementon END "
            f"FROM unnest(CAST(:keys AS uuid[]), CAST(:score AS double precision[]), {arrays}, "
            f"CAST(:last AS timestamptz[])) AS v(key, score, {', '.join(PARTY_COUNTERS)}, last) "
            f"WHERE t.{key} = v.key AND t.{key} = ANY(CAST(:keys AS uuid[]))"
        )
        params: dict[str, Any] = {
            c: [t.counts[n] for _p, t in mine] for n, c in enumerate(PARTY_COUNTERS)
        }
        params.update(
            keys=[p for p, _t in mine],
            score=[t.score for _p, t in mine],
            last=[t.last for _p, t in mine],
            now=now,
            half_life=weights.half_life_days * SECONDS_PER_DAY,
        )
        conn.execute(stmt, params)


def add_followed(conn: Connection, counts: dict[Party, int]) -> None:
    """Add tracked emails received to parties' `emailsfollowedcount` (outgoing mail)."""
    for kind, (table, key) in TABLES.items():
        rows = [{"b_key": p, "b_n": n} for (k, p), n in sorted(counts.items()) if k == kind and n]
        if rows:
            conn.execute(
                update(table)
                .where(table.c[key] == bindparam("b_key"))
                .values(emailsfollowedcount=table.c.emailsfollowedcount + bindparam("b_n")),
                rows,
            )


# --- from the events ---------------------------------------------------------------------
