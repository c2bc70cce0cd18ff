"""PostgreSQL: the Caller filter matches a prefix (LIKE 'alice%'), which a B-tree index answers only with a pattern
operator class under a database collation other than C. SQLite answers it as a range of its caller index.

Built CONCURRENTLY (so outside a transaction): a large activity table keeps taking the ingestion's writes meanwhile.
An operator may build it beforehand; ``IF NOT EXISTS`` then skips it."""
from django.db import migrations


def create_caller_prefix_index(apps, schema_editor) -> None:
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute("CREATE INDEX CONCURRENTLY IF NOT EXISTS audit_activity_caller_prefix ON audit_activitylogevent "
                          "(caller varchar_pattern_ops, occurred_at)")


def drop_caller_prefix_index(apps, schema_editor) -> None:
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute("DROP INDEX CONCURRENTLY IF EXISTS audit_activity_caller_prefix")


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("audit", "0003_nsg_rule_rows_to_their_own_vm"),
    ]

    operations = [
        migrations.RunPython(create_caller_prefix_index, drop_caller_prefix_index),
    ]
