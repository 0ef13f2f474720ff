"""Restore Life OS v1 from a Supabase pg_dump (or a live v1 database) into the v1 schema.

The dump is untrusted input and none of its text is ever sent to the server as SQL. `scanner` splits plain
dump text in one pass; `reader` parses every statement with PostgreSQL's grammar (pglast) and applies the
statement rules of `rules`; `loader` creates the 11 app tables of models/staging/v1/_v1__sources.yml (schema
public) and storage.buckets / storage.objects from names and types only and streams their rows in with
COPY FROM STDIN; `archive` reads custom, tar and directory dumps through pg_restore; `command` runs it all in
one transaction and replaces v1 only when every table's row count equals the dump's.
"""
