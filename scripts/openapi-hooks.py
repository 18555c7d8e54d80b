"""Schemathesis hooks of scripts/openapi-test.sh.

The fetch long poll waits up to `max_wait_ms` (at most 30 s) when it reads at a partition's
high watermark. Generated values, valid or not, would make some requests wait that long and the
run last many minutes, so a numeric `max_wait_ms` above MAX_WAIT_MS is sent as MAX_WAIT_MS.
Non-numeric values go as generated (the node must refuse them with a 400).
"""

import schemathesis

MAX_WAIT_MS = 200


@schemathesis.hook
def before_call(context, case, kwargs):
    query = case.query
    if not isinstance(query, dict) or "max_wait_ms" not in query:
        return
    try:
        wait = int(query["max_wait_ms"])
    except (TypeError, ValueError, OverflowError):
        return
    if wait > MAX_WAIT_MS:
        query["max_wait_ms"] = MAX_WAIT_MS
