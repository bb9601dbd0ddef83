"""The user search can read the users it finds, not the whole table.

On a test database any plan is quick; on a server with a million users, a
search that reads every row took 1.7 s per keystroke of the people picker
(docs/benchmarks.md, session 15). Accounts migration 0005's trigram indexes
are what spare it. With a few thousand users reading them all is the cheaper
plan and PostgreSQL rightly takes it; with a million it takes the indexes
(measured, not tested here). So these leave the planner nothing but index
bitmaps, as its costs do at that size, and bound what the search really read
(EXPLAIN ANALYZE) by what it found: without an index on the search's own
expression, PostgreSQL has to read every user anyway.
"""

import json
from typing import Any

import pytest
from django.db import connection

from accounts.models import User
from accounts.selectors import user_search

USERS = 5_000
# Rows a plan may read beyond those it returns (GIN rechecks a few).
SLACK = 50


@pytest.fixture
def crowd() -> None:
    User.objects.bulk_create(
        User(username=f"member{i:05d}", display_name=f"Member number {i}") for i in range(USERS)
    )
    User.objects.bulk_create(
        [
            User(username="zoltan", display_name="Zoltan Quist"),
            User(username="wanda", display_name="Wanda Zoe-Quixley"),
            User(username="j.r.tolkien", display_name="Ronald Tolkien"),
            User(username="-_-", display_name="..."),
        ]
    )
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE accounts_user")
        # Until the test's transaction ends: what is left is bitmap scans,
        # which only an index on the search's own expression can drive.
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute("SET LOCAL enable_indexscan = off")


def _rows_read(plan: dict[str, Any]) -> int:
    """Rows every scan in the plan produced or threw away."""
    read = 0
    if "Scan" in plan["Node Type"]:
        read += plan["Actual Rows"] * plan["Actual Loops"]
        read += plan.get("Rows Removed by Filter", 0) + plan.get("Rows Removed by Index Recheck", 0)
    return read + sum(_rows_read(child) for child in plan.get("Plans", []))


def _search(query: str) -> tuple[list[str], int]:
    found = user_search(query=query)[:21]
    (plan,) = json.loads(found.explain(analyze=True, format="json"))
    return [u.username for u in found], _rows_read(plan["Plan"])


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("quis", ["zoltan"]),  # inside a display name
        ("QUI", ["wanda", "zoltan"]),  # any case, in either name
        ("zo", ["zoltan"]),  # two letters: the start of a name (not Wanda's "Zoe")
        ("xq", []),  # nobody: still no full read
        ("r.t", ["j.r.tolkien"]),  # one-letter words have trigrams too
        ("...", []),  # no letter or digit, no trigram: an exact username only
        ("-_-", ["-_-"]),
    ],
)
def test_a_rare_name_is_found_without_reading_every_user(crowd, query, expected):
    found, read = _search(query)

    assert found == expected
    assert read <= len(expected) + SLACK, f"the search read {read} rows"
