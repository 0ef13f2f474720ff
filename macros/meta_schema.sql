{#
  The one home of the durable schema var('meta_schema') (default lifeos_migration),
  which no build drops. Each macro creates one part, unless it exists, and is run
  by the step that first writes it:
    meta_schema_runs           the run ledger (runs, accepted_losses, owned_objects): every dbt build's
                               on-run-start (macros/migration_ledger.sql)
    meta_schema_file_manifest  where each blob is and how the files step left it
                               (scripts/move_files.py; check 4 reads it, and refuses to
                               run without it)
    meta_schema_changes        (also with the ledger, so that it exists before any run touches live v2)
                               the log of the app's writes to a published schema, one row
                               per inserted, updated or deleted row (schema oids survive
                               renames), with the row as it was before an update or delete,
                               and the trigger function that fills it, which runs as its
                               owner so the app's role needs no right on the ledger
                               (scripts/lifeos/guard.py)
    meta_schema_carry_forward  what `scripts/migrate --carry-forward` merged of the app's
                               writes into a shadow (carried) and what it could not
                               (conflicts): with the ledger, by every build, because the
                               validation tests read carried (scripts/lifeos/carry_forward.py)
  They are plain Jinja on the quoted schema name, nothing of dbt: the scripts render
  them with lifeos_env.create_meta_tables.
#}
{% macro meta_schema_runs(meta) %}
    create schema if not exists {{ meta }};
    create table if not exists {{ meta }}.runs (
        run_id bigint generated always as identity primary key,
        started_at timestamptz not null default now(),
        finished_at timestamptz,
        command text not null,
        full_build boolean not null default false,
        dbt_invocation_id text,
        git_commit text,
        schemas jsonb not null,
        app_role text,
        dump_path text,
        dump_sha256 text,
        backup_schema text,
        published_schema_oid oid,
        table_counts jsonb,
        result text not null check (result in (
            'building', 'interrupted', 'build failed', 'built', 'running', 'refused', 'failed', 'published',
            'rolled back', 'cleaned up'
        )),
        detail text,
        build_run_id bigint references {{ meta }}.runs (run_id),
        dump_fingerprint jsonb
    );
    alter table {{ meta }}.runs add column if not exists build_run_id bigint;  -- a ledger of an older version
    alter table {{ meta }}.runs add column if not exists dump_fingerprint jsonb;
    comment on column {{ meta }}.runs.dump_fingerprint is
        'of a publish: per table of the schema it dumped, its rows and a sum of their hashes, as clean-up checks'
        ' the kept schema against before dropping it';
    comment on column {{ meta }}.runs.build_run_id is 'of a publish: the build whose shadow it published';
    comment on table {{ meta }}.runs is
        'One row per migration run: dbt build/run of v2 into the shadow schema, publish, rollback, cleanup.';
    {{ meta_schema_carry_forward(meta) }}
    {{ meta_schema_changes(meta) }}
    create table if not exists {{ meta }}.accepted_losses (
        run_id bigint not null references {{ meta }}.runs (run_id) on delete cascade,
        v1_table text not null,
        v1_id text,
        loss text not null,
        detail text
    );
    create table if not exists {{ meta }}.owned_objects (
        run_id bigint not null references {{ meta }}.runs (run_id) on delete cascade,
        object text not null
    );
    comment on table {{ meta }}.owned_objects is
        'The relations (by name) and routines (name(args)) a publish put live: the rest of live v2 is the'
        ' app''s own, which publish and rollback carry into the new live schema.';
    comment on table {{ meta }}.accepted_losses is
        'Losses a build accepted (--accept-rejects): rejected v1 rows by rule, files rows whose blob was missing'
        ' at the source (blob_missing). `dbt test` on live v2 accepts those of the run that published it.';
{% endmacro %}

{% macro meta_schema_file_manifest(meta) %}
    create schema if not exists {{ meta }};
    create table if not exists {{ meta }}.file_manifest (
        file_id uuid,
        object_key text,
        local_path text,
        size_bytes bigint,
        sha256 text,
        md5 text,
        status text not null
            check (status in ('copied', 'present', 'repaired', 'orphan', 'missing', 'refused', 'failed')),
        detail text,
        recorded_at timestamptz not null default now()
    );
    comment on table {{ meta }}.file_manifest is
        'One row per v1 files row and per orphan bucket object: where its blob is and how the files step left it';
    comment on column {{ meta }}.file_manifest.file_id is 'v1 files.id; null for an object no files row references';
    comment on column {{ meta }}.file_manifest.object_key is 'int_files.object_key, or an orphan''s key';
    comment on column {{ meta }}.file_manifest.local_path is 'the blob: int_files.storage_path, or under the orphans folder (var orphans_folder)';
    comment on column {{ meta }}.file_manifest.size_bytes is 'bytes on disk (planned size when not in place)';
    comment on column {{ meta }}.file_manifest.sha256 is 'sha256 of the bytes on disk, hex';
    comment on column {{ meta }}.file_manifest.md5 is 'md5 of the bytes on disk, hex (Storage eTags are md5s)';
    comment on column {{ meta }}.file_manifest.status is
        'in place: copied, present (already right), repaired (was wrong), orphan; not: missing, refused, failed';
    comment on column {{ meta }}.file_manifest.detail is 'why, for anything but a plain copy';
{% endmacro %}

{% macro meta_schema_changes(meta) %}
    create schema if not exists {{ meta }};
    -- only when missing: an ALTER TABLE or CREATE INDEX on the log, even one with IF NOT EXISTS, would queue for
    -- its lock behind an open transaction of the app's, and every write of the app's (each records itself
    -- here) behind it
    do $changes$
    begin
        if to_regclass('{{ meta }}.changes') is null then
            create table {{ meta }}.changes (
                change_id bigint generated always as identity primary key,
                schema_oid oid not null,
                table_name text not null,
                row_id text,
                operation text not null,
                changed_at timestamptz not null default clock_timestamp(),
                old_row jsonb,
                merged_into bigint
            );
            create index changes_lookup_idx on {{ meta }}.changes (schema_oid, table_name, row_id);
        elsif not exists (
            select from pg_attribute where attrelid = '{{ meta }}.changes'::regclass and attname = 'merged_into'
        ) then
            alter table {{ meta }}.changes add column merged_into bigint;  -- a log of an older version
        end if;
    end
    $changes$;
    comment on column {{ meta }}.changes.old_row is 'the row before an update or delete (null for an insert)';
    comment on column {{ meta }}.changes.merged_into is
        'the build (runs.run_id) whose shadow scripts/migrate --carry-forward merged this write into';
    comment on table {{ meta }}.changes is
        'Every insert, update and delete the app made on a published schema: what publish and rollback guard.';
    create or replace function {{ meta }}.record_changes() returns trigger
    language plpgsql security definer set search_path = pg_catalog, pg_temp
    as $body$
    begin
        if tg_op = 'DELETE' then
            insert into {{ meta }}.changes (schema_oid, table_name, row_id, operation, old_row)
            select c.relnamespace, tg_table_name, to_jsonb(o) ->> 'id', tg_op, to_jsonb(o)
            from old_rows o, pg_class c where c.oid = tg_relid;
        elsif tg_op = 'UPDATE' and (select tgoldtable from pg_trigger where tgrelid = tg_relid and tgname = tg_name)
            is not null then
            -- paired by id: a row whose id changed is a delete of the old id and an insert of the new one
            insert into {{ meta }}.changes (schema_oid, table_name, row_id, operation, old_row)
            select c.relnamespace, tg_table_name, coalesce(n.id, o.id),
                case when o.id is null then 'INSERT' when n.id is null then 'DELETE' else tg_op end, o.old_row
            from (select to_jsonb(n) ->> 'id' as id from new_rows n) as n
            full join (select to_jsonb(o) ->> 'id' as id, to_jsonb(o) as old_row from old_rows o) as o on o.id = n.id
            cross join pg_class c where c.oid = tg_relid;
        else  -- an insert, or an update trigger of an older version, which has no old rows
            insert into {{ meta }}.changes (schema_oid, table_name, row_id, operation)
            select c.relnamespace, tg_table_name, to_jsonb(n) ->> 'id', tg_op
            from new_rows n, pg_class c where c.oid = tg_relid;
        end if;
        return null;
    end
    $body$;
{% endmacro %}

{% macro meta_schema_carry_forward(meta) %}
    create schema if not exists {{ meta }};
    create table if not exists {{ meta }}.carried (
        build_run_id bigint not null references {{ meta }}.runs (run_id) on delete cascade,
        schema_oid oid not null,
        table_name text not null,
        row_id text not null,
        action text not null check (action in ('inserted', 'updated', 'deleted'))
    );
    create index if not exists carried_lookup_idx on {{ meta }}.carried (schema_oid, table_name, row_id);
    comment on table {{ meta }}.carried is
        'Each row of the app''s that scripts/migrate --carry-forward merged into a shadow (schema_oid: its oid,'
        ' which it keeps when published), and how. The v1 checks (macros/checks/) read it: these rows are the'
        ' app''s, not v1''s.';
    create table if not exists {{ meta }}.conflicts (
        conflict_id bigint generated always as identity primary key,
        build_run_id bigint not null references {{ meta }}.runs (run_id) on delete cascade,
        table_name text not null,
        row_id text not null,
        reason text not null,
        columns text[],
        app_version jsonb,
        v1_version jsonb,
        published_version jsonb,
        recorded_at timestamptz not null default now(),
        resolved_with text check (resolved_with in ('app', 'v1')),
        resolved_at timestamptz
    );
    -- a ledger of an older version (nothing but the migration writes this table)
    alter table {{ meta }}.conflicts
        add column if not exists resolved_with text, add column if not exists resolved_at timestamptz;
    comment on column {{ meta }}.conflicts.resolved_with is
        'whose version `scripts/publish resolve` wrote into live v2 (app or v1), when it was resolved';
    comment on table {{ meta }}.conflicts is
        'Each write of the app''s to live v2 that scripts/migrate --carry-forward did not merge into the shadow of'
        ' build build_run_id, with why: app_version is the row in live v2 (null: the app deleted it), v1_version'
        ' the row in the new shadow (null: not there), published_version the row in the merge base (the build'
        ' v1 alone produced for the live schema; null: not there). scripts/publish resolve takes either side.';
    comment on column {{ meta }}.conflicts.columns is 'the columns both sides changed to different values';
{% endmacro %}
