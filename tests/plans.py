"""The query plans of captured queries, for the tests that check a page walks an index."""
from __future__ import annotations

from django.db import connection


def plans_of(queries, *, index_if_possible: bool = False) -> list[str]:
    """The plan of each query ``CaptureQueriesContext`` captured, as one text per query. ``index_if_possible`` asks
    PostgreSQL whether an index *can* serve the query (sequential scans and sorts off): on a test's few rows its
    planner may scan and sort whatever the indexes, and SQLite plans the same either way."""
    plans = []
    with connection.cursor() as cursor:
        off = index_if_possible and connection.vendor == "postgresql"
        if off:
            cursor.execute("SET enable_seqscan = off; SET enable_sort = off")
        try:
            for query in queries.captured_queries:
                cursor.execute(f"EXPLAIN {'QUERY PLAN ' if connection.vendor == 'sqlite' else ''}{query['sql']}")
                plans.append("\n".join(str(row) for row in cursor.fetchall()))
        finally:
            if off:
                cursor.execute("RESET enable_seqscan; RESET enable_sort")
    return plans
