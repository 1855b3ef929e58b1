"""The aggregate open measure (issue 13, docs/privacy.md): one pixel per email, counted.

A copy left untracked for want of consent may carry, with the setting `aggregate_opens`,
the email's aggregate pixel: its token names `aggregatepixel.pixelid`, the same for every
such copy of the email, and nothing about the recipient. `ensure` gives an email its
pixel when the first such copy is made; ingest adds each batch's hits with `add`, which
keeps nothing of a request but the fact that it came; `open_count` is what the REST
email detail and the panel show.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping

from sqlalchemy import Connection, select, update

from .schema import aggregatepixel


def ensure(conn: Connection, activity_id: uuid.UUID) -> int:
    """The pixel id of the email, made now if it has none."""
    found = conn.execute(
        select(aggregatepixel.c.pixelid).where(aggregatepixel.c.emailactivityid == activity_id)
    ).scalar()
    if found is not None:
        return int(found)
    inserted = conn.execute(
        aggregatepixel.insert()
        .values(emailactivityid=activity_id)
        .returning(aggregatepixel.c.pixelid)
    ).scalar_one()
    return int(inserted)


def add(conn: Connection, counts: Mapping[int, int]) -> tuple[int, int]:
    """Add `counts` (pixel id -> hits) to the pixels' open counts: (hits counted, hits
    naming no pixel we have)."""
    counted = orphans = 0
    for pixel_id, hits in sorted(counts.items()):
        result = conn.execute(
            update(aggregatepixel)
            .where(aggregatepixel.c.pixelid == pixel_id)
            .values(opencount=aggregatepixel.c.opencount + hits)
        )
        if result.rowcount:
            counted += hits
        else:
            orphans += hits
    return counted, orphans


def open_count(conn: Connection, activity_id: uuid.UUID) -> int | None:
    """The email's aggregate open count; None when no copy of it carried the pixel."""
    found = conn.execute(
        select(aggregatepixel.c.opencount).where(aggregatepixel.c.emailactivityid == activity_id)
    ).scalar()
    return None if found is None else int(found)
