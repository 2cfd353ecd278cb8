"""Plain SQL for the few reads on every request and live refresh where building the ORM's query
cost more than running it (docs/performance.md): the signed-in user, the lookup's credential, the
audit chain's head. Written once per model from the model's own table and column names, so a
renamed column or table is followed as the ORM would follow it."""

from __future__ import annotations

from functools import cache

from django.db import connections, models


@cache
def select_where(
    model: type[models.Model], alias: str, *fields: str, for_update: bool = False
) -> str:
    """`SELECT * FROM <model's table> WHERE <field> = %s AND …` (`"pk"` names the primary key),
    with `FOR UPDATE` where the database has row locks (SQLite's transaction holds its one
    writer lock instead). The values are parameters, in `fields`' order."""
    connection = connections[alias]
    quote, meta = connection.ops.quote_name, model._meta
    columns = [(meta.pk if name == "pk" else meta.get_field(name)).column for name in fields]
    where = " AND ".join(f"{quote(column)} = %s" for column in columns)
    sql = f"SELECT * FROM {quote(meta.db_table)} WHERE {where}"  # noqa: S608 (the model's names)
    return sql + " FOR UPDATE" if for_update and connection.features.has_select_for_update else sql
