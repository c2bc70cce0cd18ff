"""The trail's User filter matches a prefix of the user name in any case (LOWER(actor_label) LIKE 'alice%'), which
an index of that expression answers: on PostgreSQL with a pattern operator class (a database collation other than C
orders text otherwise), on SQLite as a range of the expression's byte order (``audit.filtersets.prefix_q``).

Built CONCURRENTLY on PostgreSQL (so outside a transaction): a large trail keeps taking the portal's appends meanwhile.
An operator may build it beforehand; ``IF NOT EXISTS`` then skips it."""
from django.db import migrations


def create_user_prefix_index(apps, schema_editor) -> None:
    vendor = schema_editor.connection.vendor
    if vendor == "postgresql":
        schema_editor.execute("CREATE INDEX CONCURRENTLY IF NOT EXISTS audit_trail_user_prefix ON audit_auditevent "
                              "(lower(actor_label) text_pattern_ops, occurred_at)")
    elif vendor == "sqlite":
        schema_editor.execute("CREATE INDEX IF NOT EXISTS audit_trail_user_prefix ON audit_auditevent "
                              "(lower(actor_label), occurred_at)")


def drop_user_prefix_index(apps, schema_editor) -> None:
    vendor = schema_editor.connection.vendor
    if vendor == "postgresql":
        schema_editor.execute("DROP INDEX CONCURRENTLY IF EXISTS audit_trail_user_prefix")
    elif vendor == "sqlite":
        schema_editor.execute("DROP INDEX IF EXISTS audit_trail_user_prefix")


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("audit", "0004_activity_caller_prefix_index"),
    ]

    operations = [
        migrations.RunPython(create_user_prefix_index, drop_user_prefix_index),
    ]
