"""engagement roll-ups for the panel's charts

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-02 11:00:00.000000

The panel charts a viewer's month: events per day by people and by machines, and the
machine share by the recipients' mail environment (issue 12). Counted from the events
that took 2 s for a rep and 7 s for an admin at 10M events, on every page view. So
(store/rollups.py):

- `engagementhour`: events per (owner, UTC hour, verdict);
- `environmentday`: events by people and machines per (owner, UTC day the copy was
  sent, recipient mail environment);
- `emaildelivery.personevents` / `machineevents` / `mailenvironment`: one copy's
  (environments.py's key: consumer provider, gateway vendor, Apple MPP, ...);
- each owner's rows have twins under the nil UUID, the sum over everyone (admins).

pipeline/tally.py keeps them by delta in the events' own transaction. This fills them
from the events already stored: grouped passes, and one ordered pass over the machine
events' network facts for the environments.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import sqlalchemy as sa
from alembic import op

from mailsignal.environments import of_copy

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

BATCH = 10_000
EVERYONE = uuid.UUID(int=0)  # store/rollups.EVERYONE: the rows summing every owner


def _batches(rows: Iterator[Any]) -> Iterator[list[dict[str, Any]]]:
    batch: list[dict[str, Any]] = []
    for row in rows:
        batch.append(row)
        if len(batch) >= BATCH:
            yield batch
            batch = []
    if batch:
        yield batch


def upgrade() -> None:
    op.create_table(
        "engagementhour",
        sa.Column("ownerid", sa.Uuid(), nullable=False),
        sa.Column("hourstart", sa.DateTime(timezone=True), nullable=False),
        sa.Column("verdict", sa.String(length=16), nullable=False),
        sa.Column("events", sa.Integer(), server_default="0", nullable=False),
        sa.PrimaryKeyConstraint("ownerid", "hourstart", "verdict"),
    )
    op.create_table(
        "environmentday",
        sa.Column("ownerid", sa.Uuid(), nullable=False),
        sa.Column("sentday", sa.Date(), nullable=False),
        sa.Column("environment", sa.String(length=32), nullable=False),
        sa.Column("personevents", sa.Integer(), server_default="0", nullable=False),
        sa.Column("machineevents", sa.Integer(), server_default="0", nullable=False),
        sa.PrimaryKeyConstraint("ownerid", "sentday", "environment"),
    )
    with op.batch_alter_table("emaildelivery", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("personevents", sa.Integer(), server_default="0", nullable=False)
        )
        batch_op.add_column(
            sa.Column("machineevents", sa.Integer(), server_default="0", nullable=False)
        )
        batch_op.add_column(sa.Column("mailenvironment", sa.String(length=32), nullable=True))

    conn = op.get_bind()
    sqlite = conn.dialect.name == "sqlite"
    # The hour an event falls in, in each backend's storage form (types.UtcDateTime).
    hour = (
        "substr(emailinteractiontime, 1, 13) || ':00:00.000000'"
        if sqlite
        else "date_trunc('hour', emailinteractiontime AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'"
    )
    everyone = sa.bindparam("everyone", EVERYONE, type_=sa.Uuid())
    grouped = f"SELECT ownerid, {hour}, verdict, count(*) FROM interactionforemail"  # noqa: S608
    conn.execute(
        sa.text(
            "INSERT INTO engagementhour (ownerid, hourstart, verdict, events) "
            + grouped
            + f" WHERE ownerid IS NOT NULL GROUP BY ownerid, {hour}, verdict"
        )
    )
    conn.execute(
        sa.text(
            "INSERT INTO engagementhour (ownerid, hourstart, verdict, events) "
            "SELECT :everyone, hourstart, verdict, sum(events) FROM engagementhour "
            "GROUP BY hourstart, verdict"
        ).bindparams(everyone)
    )

    counts = conn.execute(
        sa.text(
            "SELECT deliveryid, "
            "sum(CASE WHEN verdict IN ('human', 'forward') THEN 1 ELSE 0 END), "
            "sum(CASE WHEN verdict = 'machine' THEN 1 ELSE 0 END) "
            "FROM interactionforemail GROUP BY deliveryid"
        )
    )
    set_counts = sa.text(
        "UPDATE emaildelivery SET personevents = :p, machineevents = :m WHERE deliveryid = :d"
    )
    rows = ({"d": d, "p": int(p or 0), "m": int(m or 0)} for d, p, m in counts.fetchall())
    for batch in _batches(rows):
        conn.execute(set_counts, batch)

    net = "json_extract(e.facts, '$.net')" if sqlite else "(e.facts::jsonb -> 'net')::text"
    facts = f"SELECT e.deliveryid, d.emailaddress, {net} FROM interactionforemail e"  # noqa: S608
    machine = conn.execute(
        sa.text(
            facts + " JOIN emaildelivery d ON d.deliveryid = e.deliveryid"
            " WHERE e.verdict = 'machine' ORDER BY e.deliveryid, e.emailinteractiontime"
        )
    )
    # Per copy, the facts environments.of_copy decides on: the first machine event from
    # a gateway ends the list; before one, an Apple relay fetch and any other are kept.
    found: dict[int, tuple[str, list[dict[str, Any]]]] = {}
    for delivery, address, text in machine:
        net = json.loads(text) if text else {}
        nets = found.setdefault(delivery, (address, []))[1]
        labels = (net or {}).get("labels") or ()
        if nets and "security-gateway" in (nets[-1]["net"].get("labels") or ()):
            continue
        if "security-gateway" in labels or len(nets) < 2 or "apple-private-relay" in labels:
            nets.append({"net": net or {}})
    # Consumer addresses without machine events have an environment too.
    for delivery, address in conn.execute(
        sa.text("SELECT deliveryid, emailaddress FROM emaildelivery")
    ):
        if delivery not in found and of_copy(address, ()) is not None:
            found[delivery] = (address, [])
    set_env = sa.text("UPDATE emaildelivery SET mailenvironment = :e WHERE deliveryid = :d")
    envs = ({"d": d, "e": of_copy(address, nets)} for d, (address, nets) in sorted(found.items()))
    for batch in _batches(r for r in envs if r["e"] is not None):
        conn.execute(set_env, batch)

    day = "date(e.senton)" if sqlite else "CAST(e.senton AT TIME ZONE 'UTC' AS date)"
    per_day = f"SELECT e.ownerid, {day}, coalesce(d.mailenvironment, ''),"
    conn.execute(
        sa.text(
            "INSERT INTO environmentday "
            "(ownerid, sentday, environment, personevents, machineevents) "
            + per_day
            + " sum(d.personevents), sum(d.machineevents) FROM emaildelivery d "
            "JOIN email e ON e.activityid = d.emailactivityid "
            "WHERE e.senton IS NOT NULL AND d.personevents + d.machineevents > 0 "
            f"GROUP BY e.ownerid, {day}, coalesce(d.mailenvironment, '')"
        )
    )
    conn.execute(
        sa.text(
            "INSERT INTO environmentday "
            "(ownerid, sentday, environment, personevents, machineevents) "
            "SELECT :everyone, sentday, environment, sum(personevents), sum(machineevents) "
            "FROM environmentday GROUP BY sentday, environment"
        ).bindparams(everyone)
    )


def downgrade() -> None:
    with op.batch_alter_table("emaildelivery", schema=None) as batch_op:
        batch_op.drop_column("mailenvironment")
        batch_op.drop_column("machineevents")
        batch_op.drop_column("personevents")
    op.drop_table("environmentday")
    op.drop_table("engagementhour")
