"""The Dataverse-compatible Web API subset under `/api/data/v9.2/` (issue #5).

Enough of Dataverse for queries and flows written for Dynamics 365 to run unchanged:
`GET {entityset}?fetchXml=` or OData query options, `GET {entityset}({id})?$select=`,
`PATCH` on the writable columns of usersettings, contacts, leads, accounts and
organizations, `$batch`, metadata (`EntityDefinitions`, `$metadata`) and `WhoAmI()`.
Shapes, codes and messages follow shared/reference/dataverse.md §3-4; every error is
`{"error": {"code": "0x...", "message": "..."}}`. Row-level access is the FetchXML
compiler's (a rep reads only their own emails and events), so this package never filters.

    routes.py       the endpoints: WhoAmI, RetrieveMultiple, savedqueries, PATCH
    record.py       one record: Retrieve ($select, $expand), a property's value, $count
    common.py       the engine, entity set, caller, a bounded run, shaped rows
    options.py      OData query options ($select, $filter...) -> a FetchXML query
                    (the translation itself is fetchxml/odata.py)
    prepare.py      what a query reads beyond what it shows (the etag's version)
    shape.py        rows as Dataverse returns them: annotations, lookups, formatted values,
                    Prefer, paging links
    writes.py       what a PATCH may change, its values, binds, privileges, preconditions
    metadata.py     EntityDefinitions, Attributes, typed casts, $metadata (CSDL),
    definitions.py  generated from the catalog
    batch.py        $batch: multipart GETs and PATCHes, change sets
    errors.py       DataverseError and the one error shape every refusal is answered in

Queries run through `store.fetch`, single records are read and written by
`store.records`: nothing here writes SQL.
"""

from __future__ import annotations

from .common import PREFIX
from .routes import router

__all__ = ["PREFIX", "router"]
