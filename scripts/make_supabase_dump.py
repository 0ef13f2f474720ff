"""Build Supabase-shaped v1 dumps from a throwaway database made to look like Supabase.

    python scripts/make_supabase_dump.py --sample          # regenerate sample/life_os_v1_backup.sql
    python scripts/make_supabase_dump.py --out DIR [--scale N]   # every variant, for tests and bench

The throwaway database (on the target server, dropped afterwards)
gets Supabase's roles, auth.users and auth.uid(), the storage schema with the
sample's bucket and objects (metadata size, eTag = quoted md5, mimetype), RLS
and policies, grants and default privileges, the supabase_realtime publication,
an event trigger, an app column `user_id uuid default auth.uid() references
auth.users` and a `default extensions.uuid_generate_v4()`; then the sample of
scripts/generate_sample.py in schema public. The variants pg_dump writes of it:

    plain                the plain dump as pg_dump writes it
    custom               pg_dump -Fc
    tar, directory       pg_dump -Ft and -Fd
    extensions           plain, with the CREATE EXTENSION lines of Supabase's extensions injected
    restrict             plain, with \\restrict KEY / \\unrestrict KEY lines (pg_dump >= 15.14 writes them)
    transaction_timeout  plain, with pg_dump 17's SET transaction_timeout = 0;
    cli                  like `supabase db dump --data-only`: INSERTs, quoted identifiers, no comments
"""

from __future__ import annotations

import argparse
import hashlib
import json
import mimetypes
import shutil
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

import psycopg2
import psycopg2.errors
from psycopg2 import sql

import generate_sample
import lifeos_env
from lifeos.restore.contract import SAMPLE_DUMP

ROLES = ["supabase_admin", "supabase_auth_admin", "supabase_storage_admin", "anon", "authenticated", "service_role"]
EXTENSIONS = {
    "pg_graphql": "graphql",
    "pgsodium": "pgsodium",
    "supabase_vault": "vault",
    "pgjwt": "extensions",
    "pg_net": "extensions",
    "pg_cron": "pg_catalog",
}
USER_ID = "6f1c2f4e-0b7a-4c39-9d59-3d1f2b0c5a11"
VARIANTS = ["plain", "custom", "tar", "directory", "extensions", "restrict", "transaction_timeout", "cli"]
ARCHIVES = {"custom": "c", "tar": "t", "directory": "d"}  # variant -> pg_dump --format
SAMPLE_VARIANT = "extensions"  # the bundled sample: the most Supabase-like, with extension and \\restrict lines
RESTRICT_KEY = "Sb5yFvQ2cLrT8wXn0pZkHj4mDa7eUoGi"

SUPABASE_SQL = """
create schema auth authorization supabase_auth_admin;
create schema storage authorization supabase_storage_admin;
create schema extensions;
create schema realtime;
create schema vault;
create schema graphql;
create schema pgbouncer;

create function extensions.uuid_generate_v4() returns uuid language sql as 'select gen_random_uuid()';
create table auth.users (
    id uuid primary key, email text, encrypted_password text, created_at timestamptz default now()
);
create function auth.uid() returns uuid language sql stable
    as $$ select nullif(current_setting('request.jwt.claim.sub', true), '')::uuid $$;
alter table auth.users owner to supabase_auth_admin;

create table storage.buckets (
    id text primary key, name text not null, owner uuid, public boolean default false,
    created_at timestamptz default now(), updated_at timestamptz default now(),
    file_size_limit bigint, allowed_mime_types text[]
);
create table storage.objects (
    id uuid primary key default extensions.uuid_generate_v4(),
    bucket_id text references storage.buckets (id), name text, owner uuid,
    created_at timestamptz default now(), updated_at timestamptz default now(),
    last_accessed_at timestamptz default now(), metadata jsonb,
    path_tokens text[] generated always as (string_to_array(name, '/')) stored,
    version text, owner_id text, user_metadata jsonb
);
alter table storage.buckets owner to supabase_storage_admin;
alter table storage.objects owner to supabase_storage_admin;
alter table storage.objects enable row level security;

create function extensions.pgrst_ddl_watch() returns event_trigger language plpgsql
    as $$ begin perform pg_notify('pgrst', 'reload schema'); end $$;
create event trigger pgrst_ddl_watch on ddl_command_end execute function extensions.pgrst_ddl_watch();
create publication supabase_realtime;
alter default privileges for role supabase_admin in schema public
    grant all on tables to anon, authenticated, service_role;
"""


def create_roles() -> None:
    """Supabase's roles; they are cluster-wide, so only the missing ones are made (another process, e.g. a second
    test worker, may make the same one meanwhile: its duplicate is no error)."""
    with lifeos_env.transaction() as cur:
        cur.execute("select rolname from pg_roles where rolname = any(%s)", (ROLES,))
        existing = {name for (name,) in cur.fetchall()}
        for role in ROLES:
            if role not in existing:
                cur.execute("savepoint new_role")
                try:
                    cur.execute(sql.SQL("create role {} nologin").format(sql.Identifier(role)))
                except (psycopg2.errors.DuplicateObject, psycopg2.errors.UniqueViolation):
                    cur.execute("rollback to savepoint new_role")


def build_source(database: str, scale: int) -> generate_sample.Generator:
    """Make `database` (new, empty) look like Supabase holding the v1 sample at `scale`; return its generator."""
    create_roles()
    generator = generate_sample.Generator(scale)
    tables = generator.tables()
    with lifeos_env.using_database(database):
        generate_sample.load("public", tables)
    conn = psycopg2.connect(dbname=database)
    with conn, conn.cursor() as cur:
        cur.execute(SUPABASE_SQL)
        supabase_shape(cur, list(tables))
        storage_rows(cur, generator.blobs)
    conn.close()
    return generator


def supabase_shape(cur: psycopg2.extensions.cursor, tables: list[str]) -> None:
    """What Supabase adds around the app's tables: owners, auth columns, RLS, policies, grants, publication."""
    cur.execute("insert into auth.users (id, email) values (%s, 'me@example.org')", (USER_ID,))
    cur.execute("alter table public.capture alter column id set default extensions.uuid_generate_v4()")
    for table in ("tasks", "notes"):
        cur.execute(
            sql.SQL(
                "alter table public.{t} add column user_id uuid default auth.uid() references auth.users (id);"
                "update public.{t} set user_id = %s;"
                "create policy {p} on public.{t} to authenticated using ((select auth.uid()) = user_id)"
            ).format(t=sql.Identifier(table), p=sql.Identifier(f"{table}_owner")),
            (USER_ID,),
        )
    for table in tables:
        name = sql.Identifier(table)
        cur.execute(
            sql.SQL(
                "alter table public.{t} owner to supabase_admin; alter table public.{t} enable row level security;"
                " grant all on public.{t} to anon, authenticated, service_role"
            ).format(t=name)
        )
    cur.execute("alter publication supabase_realtime add table public.tasks, public.notes")


def storage_rows(cur: psycopg2.extensions.cursor, blobs: dict[str, bytes]) -> None:
    """The bucket, and one storage.objects row per blob the sample writes with --blobs-dir."""
    bucket = generate_sample.BUCKET
    cur.execute("insert into storage.buckets (id, name, owner, created_at) values (%s, %s, %s, %s)",
                (bucket, bucket, USER_ID, generate_sample.EPOCH))  # fmt: skip
    for key, body in blobs.items():
        metadata = {
            "eTag": f'"{hashlib.md5(body).hexdigest()}"',
            "size": len(body),
            "mimetype": mimetypes.guess_type(key)[0] or "application/octet-stream",
            "cacheControl": "max-age=3600",
            "lastModified": generate_sample.EPOCH.isoformat(),
            "contentLength": len(body),
            "httpStatusCode": 200,
        }
        cur.execute(
            "insert into storage.objects (id, bucket_id, name, owner, owner_id, created_at, updated_at,"
            " last_accessed_at, metadata, version) values (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
            (str(uuid.uuid5(uuid.NAMESPACE_URL, key)), bucket, key, USER_ID, USER_ID, *[generate_sample.EPOCH] * 3,
             json.dumps(metadata), str(uuid.uuid5(uuid.NAMESPACE_OID, key))),
        )  # fmt: skip


def with_restrict(text: bytes) -> bytes:
    """The \\restrict / \\unrestrict lines newer pg_dump versions write around a plain dump."""
    if b"\n\\restrict " in text:
        return text
    footer = b"\n--\n-- PostgreSQL database dump complete"
    head, _, rest = text.partition(b"\n\nSET ")
    body, _, tail = (b"\n\nSET " + rest).rpartition(footer)
    key = RESTRICT_KEY.encode()
    return b"".join([head, b"\n\\restrict ", key, b"\n", body, footer, tail, b"\\unrestrict ", key, b"\n\n"])


def with_extensions(text: bytes) -> bytes:
    lines = "".join(
        f"--\n-- Name: {name}; Type: EXTENSION; Schema: -; Owner: -\n--\n\n"
        f"CREATE EXTENSION IF NOT EXISTS {name} WITH SCHEMA {schema};\n\n"
        for name, schema in EXTENSIONS.items()
    )
    marker = b"SELECT pg_catalog.set_config('search_path', '', false);\n"
    return text.replace(marker, marker + b"SET check_function_bodies = false;\n\n" + lines.encode(), 1)


def with_transaction_timeout(text: bytes) -> bytes:
    return text.replace(b"SET lock_timeout = 0;\n", b"SET lock_timeout = 0;\nSET transaction_timeout = 0;\n", 1)


def cli_dump(dump: str, database: str) -> str:
    """What `supabase db dump --data-only` writes: column INSERTs, quoted identifiers, comments deleted."""
    text = subprocess.run(
        [dump, "--data-only", "--column-inserts", "--quote-all-identifiers", "--schema", "public",
         "--schema", "storage", "--schema", "auth", "--dbname", database],
        capture_output=True, check=True,
    ).stdout.decode()  # fmt: skip
    body = "".join(line + "\n" for line in text.split("\n")[:-1] if not line.startswith("--"))
    return "SET session_replication_role = replica;\n\n" + body + "RESET ALL;\n"


def backslash_lines_dump(lines: int) -> bytes:
    """A CLI-style data dump (as cli_dump writes it) of one note whose body has `lines` lines beginning with a
    backslash, as LaTeX does: a restore that rescans pending text at each such line takes quadratic time."""
    body = "".join(f"\\item line {n} with a ''quote'' and \\\\ more;\n" for n in range(lines))
    note = "00000000-0000-4000-8000-000000000000"
    row = f'INSERT INTO "public"."notes" ("id", "title", "body") VALUES\n\t(\'{note}\', \'TeX\', \'{body}\');\n'
    return f"SET session_replication_role = replica;\n\n{row}\nRESET ALL;\n".encode()


def write_dumps(database: str, out: Path, variants: list[str], major: int | None = None) -> dict[str, Path]:
    """pg_dump `database` into `out` in each of `variants`; return the paths.

    With pg_dump version `major`, else the newest here (it writes \\restrict lines and dumps every older server).
    The plain dump is edited as bytes: a large scale's dump would take four times its size as str.
    """
    out.mkdir(parents=True, exist_ok=True)
    dump = lifeos_env.pg_client("pg_dump", major)
    plain = subprocess.run([dump, "--dbname", database], capture_output=True, check=True).stdout
    texts = {
        "plain": lambda: plain,
        "extensions": lambda: with_restrict(with_extensions(plain)),
        "restrict": lambda: with_restrict(plain),
        "transaction_timeout": lambda: with_transaction_timeout(plain),
        "cli": lambda: cli_dump(dump, database).encode(),
    }
    paths = {}
    for variant in variants:
        path = out / f"{variant}.{'sql' if variant in texts else 'dump'}"
        if variant in ARCHIVES:
            subprocess.run([dump, f"-F{ARCHIVES[variant]}", "--dbname", database, "--file", str(path)], check=True)
        else:
            path.write_bytes(texts[variant]())
        paths[variant] = path
    return paths


def make_dumps(scale: int, out: Path, variants: list[str]) -> dict[str, Path]:
    """Build a throwaway Supabase-like database at `scale`, dump it in `variants` into `out`, drop it."""
    with lifeos_env.scratch_database("lifeos_supabase") as database:
        build_source(database, scale)
        return write_dumps(database, out, variants)


def dump_sample(scale: int, out: Path | str) -> Path:
    """A sample dump like the bundled one (plain, with extension and \\restrict lines) at `scale`, in `out`."""
    return make_dumps(scale, Path(out), [SAMPLE_VARIANT])[SAMPLE_VARIANT]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    target = parser.add_mutually_exclusive_group(required=True)
    target.add_argument("--sample", action="store_true", help=f"rewrite {SAMPLE_DUMP.name} (scale 1)")
    target.add_argument("--out", type=Path, help="write every variant into this folder")
    parser.add_argument("--scale", type=int, default=1, help="with --out: the sample's scale (default 1)")
    args = parser.parse_args(argv)
    lifeos_env.ensure_target()
    if args.sample:
        with tempfile.TemporaryDirectory() as scratch:
            shutil.move(dump_sample(1, scratch), SAMPLE_DUMP)
        print(f"wrote {SAMPLE_DUMP}")
    else:
        for variant, path in make_dumps(args.scale, args.out, VARIANTS).items():
            print(f"{variant}: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
