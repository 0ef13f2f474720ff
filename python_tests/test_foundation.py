"""The first vertical slice on a real database: domains and areas, per plan 3.1 and 3.2."""

from __future__ import annotations

import json
import os
import subprocess

import psycopg2.extensions
import pytest
from psycopg2 import sql

import lifeos_env

Cursor = psycopg2.extensions.cursor


def test_domains_and_areas_keep_every_row_and_uuid(sample_db: Cursor) -> None:
    for table in ("domains", "areas"):
        sample_db.execute(
            sql.SQL(
                "select count(*) from v1.{t} full join public.{t} using (id)"
                " where v1.{t}.id is null or public.{t}.id is null"
            ).format(t=sql.Identifier(table))
        )
        assert sample_db.fetchone() == (0,), table


def test_sort_order_is_10_20_30_per_scope_by_created_at_then_id(sample_db: Cursor) -> None:
    sample_db.execute(
        """
        select a.domain_id, array_agg(a.sort_order order by v.created_at, v.id)
        from public.areas a join v1.areas v using (id)
        group by a.domain_id
        """
    )
    for _, orders in sample_db.fetchall():
        assert orders == [10 * (i + 1) for i in range(len(orders))]
    sample_db.execute("select array_agg(sort_order order by created_at, id) from public.domains")
    assert sample_db.fetchone()[0] == [10, 20, 30, 40, 50]


def test_new_columns_take_the_plans_values(sample_db: Cursor) -> None:
    sample_db.execute(
        "select bool_and(updated_at = created_at and is_active and description is null and icon is null)"
        " from public.domains"
    )
    assert sample_db.fetchone() == (True,)


def test_contract_is_in_the_catalog(sample_db: Cursor) -> None:
    sample_db.execute(
        """
        select conname, pg_get_constraintdef(oid) from pg_constraint
        where conrelid = 'public.areas'::regclass order by conname
        """
    )
    assert sample_db.fetchall() == [
        ("areas_domain_id_fkey", "FOREIGN KEY (domain_id) REFERENCES domains(id) ON DELETE CASCADE"),
        ("areas_pkey", "PRIMARY KEY (id)"),
    ]
    sample_db.execute(
        "select column_name, column_default from information_schema.columns"
        " where table_schema = 'public' and table_name = 'areas' and column_default is not null order by 1"
    )
    assert dict(sample_db.fetchall()) == {
        "created_at": "now()", "id": "gen_random_uuid()", "is_active": "true",
        "sort_order": "0", "updated_at": "now()",
    }  # fmt: skip


def test_app_inserts_get_defaults_and_updates_touch_updated_at(sample_db: Cursor) -> None:
    sample_db.execute("insert into public.domains (name) values ('New') returning id, is_active, sort_order")
    new_id, is_active, sort_order = sample_db.fetchone()
    assert new_id is not None and is_active is True and sort_order == 0
    sample_db.execute("update public.areas set name = name || '!' returning updated_at > created_at")
    assert all(touched for (touched,) in sample_db.fetchall())


def test_reading_commands_see_live_v2_even_right_after_a_build(migrated_sample: str) -> None:
    """A manifest parsed by `dbt build` must not leak the shadow schema into `dbt test` or `dbt ls`."""
    listing = subprocess.run(
        ["dbt", "ls", "-s", "domains", "--resource-type", "model", "--output", "json", "--output-keys", "schema", "-q"],
        cwd=lifeos_env.ROOT, env=os.environ | {"PGDATABASE": migrated_sample},
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert json.loads(listing.stdout) == {"schema": "public"}


def test_a_scratch_database_is_named_while_used_and_dropped_even_on_failure() -> None:
    """lifeos_env.scratch_database and using_database: the one way scripts make and point at a throwaway database."""
    before = os.environ["PGDATABASE"]
    with pytest.raises(RuntimeError), lifeos_env.scratch_database("lifeos_test_scratch") as name:
        with lifeos_env.using_database(name), lifeos_env.transaction() as cur:
            cur.execute("select current_database()")
            assert cur.fetchone() == (name,)
        raise RuntimeError
    assert os.environ["PGDATABASE"] == before
    with lifeos_env.transaction() as cur:
        cur.execute("select count(*) from pg_database where datname = %s", (name,))
        assert cur.fetchone() == (0,)
