"""Dataverse error codes the engine answers with, in one place (docs/fetchxml.md lists them).

Codes marked [D]/[E] come from reference/dataverse.md §3; the QueryBuilder* numbers come
from Dataverse's `CommonErrorCodes` table (the 0x800411xx block). Where Dataverse has no
code we know of, the engine uses InvalidArgument, as dataverse.md §3 suggests for values.
"""

from __future__ import annotations

INVALID_XML = "0x80040201"  # InvalidXml: not well-formed, DTD, unknown element or attribute
INVALID_ARGUMENT = "0x80040203"  # InvalidArgument: a value of the wrong type, bad cookie
USER_TIMEZONE = "0x80040240"  # UserTimeZoneException: the caller's zone is unknown
NO_ENTITY = "0x80041102"  # QueryBuilderNoEntity
NO_ATTRIBUTE = "0x80041103"  # QueryBuilderNoAttribute
ATTRIBUTE_WITH_AGGREGATE = "0x80041107"  # aggregate query attribute without aggregate/groupby
ALIAS_DOES_NOT_EXIST = "0x8004110A"  # entityname / valueof naming an unknown link alias
NO_ALIAS = "0x8004110B"  # aggregate attribute without alias
VALUE_GREATER_THAN_ZERO = "0x8004110C"  # page must be >= 1
INVALID_DISTINCT = "0x80041115"
INVALID_MAPPING = "0x80041116"
INVALID_LINK_TYPE = "0x80041117"
INVALID_NO_LOCK = "0x80041118"
INVALID_DESCENDING = "0x80041119"
INVALID_AGGREGATE = "0x8004111A"  # fetch aggregate= not boolean, or unknown aggregate function
INVALID_ALIAS = "0x8004111B"  # an alias that is not an identifier
INVALID_NODE = "0x8004111C"  # an element FetchXML does not have
INVALID_CONDITION_OPERATOR = "0x80041120"
INVALID_FILTER_TYPE = "0x80041122"
LINK_NODE_FOR_ORDER_NOT_FOUND = "0x80041126"
TOP_COUNT_GREATER_THAN_ZERO = "0x80041127"
DUPLICATE_ALIAS = "0x80041130"
ORDER_ATTRIBUTE_IN_AGGREGATE = "0x80041131"
ORDER_ALIAS_IN_NORMAL_QUERY = "0x80041132"
ORDER_ALIAS_NOT_FOUND = "0x80041134"
TOO_MANY_CONDITIONS = "0x8004430C"  # TooManyConditionsInQuery
TOO_MANY_LINKS = "0x8004430D"
SQL_TIMEOUT = "0x80044151"  # SqlTimeoutError: the query ran past query_timeout_seconds

# Limits (docs/fetchxml.md "Limits").
MAX_INPUT_CHARS = 256 * 1024  # far above Dataverse's 32 KB URL / 64 KB $batch bodies
MAX_DEPTH = 40  # element nesting; filters nest "to any depth" but a stack must not
MAX_CONDITIONS_AND_LINKS = 500
MAX_LINKS = 15
MAX_PAGE_SIZE = 5000
MAX_TOTAL_RECORD_COUNT = 5000
