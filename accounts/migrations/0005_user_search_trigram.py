"""Trigram indexes for the user search (accounts.selectors.user_search).

The search matches any part of a username or display name, in any case:
`UPPER(col::text) LIKE UPPER('%q%')`. No B-tree serves that, so with a million
users a search for a rare name read every row, 1.7 s, on every keystroke of the
people picker (docs/benchmarks.md, session 15). pg_trgm's GIN indexes on the
same expressions answer it from the trigrams of the query: about 1 ms.

PostgreSQL only (SQLite, the embedded default, has no such index). pg_trgm is a
trusted extension since PostgreSQL 13: the database's owner may create it. The
indexes are built CONCURRENTLY, so sign-ups and profile edits go on meanwhile;
that cannot run in a transaction, hence atomic = False.
"""

from django.db import migrations

INDEXES = {
    "accounts_user_username_trgm": "username",
    "accounts_user_display_name_trgm": "display_name",
}


def create(apps, schema_editor) -> None:  # type: ignore[no-untyped-def]
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    for name, column in INDEXES.items():
        # A CONCURRENTLY build that failed or was cancelled leaves an invalid
        # index behind, which IF NOT EXISTS would take for done. (One being
        # built by another migrate at this moment is invalid too: migrate
        # once at a time.)
        with schema_editor.connection.cursor() as cursor:
            cursor.execute(
                "SELECT 1 FROM pg_index WHERE indexrelid = to_regclass(%s) AND NOT indisvalid",
                [name],
            )
            if cursor.fetchone():
                schema_editor.execute(f"DROP INDEX CONCURRENTLY {name}")
        # The expression must be the one Django's icontains writes.
        schema_editor.execute(
            f"CREATE INDEX CONCURRENTLY IF NOT EXISTS {name} ON accounts_user"
            f" USING gin (UPPER({column}::text) gin_trgm_ops)"
        )


def drop(apps, schema_editor) -> None:  # type: ignore[no-untyped-def]
    if schema_editor.connection.vendor != "postgresql":
        return
    for name in INDEXES:
        schema_editor.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {name}")
    # The extension stays: other things may have come to use it.


class Migration(migrations.Migration):
    atomic = False

    dependencies = [("accounts", "0004_user_session_epoch")]

    operations = [migrations.RunPython(create, drop)]
