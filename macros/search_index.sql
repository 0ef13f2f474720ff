{#
  search_index is kept current by the database itself:
  - a search source (each model search_index refs) gets, once its rows are
    in (mart_post_hook), triggers <table>_search_index_sync_insert and _update,
    which upsert the rows of the items each statement wrote, in one statement
    (a soft delete sets its is_active),
    so the item is searchable when the transaction commits; a hard delete
    removes it with the item (search_index's on_entity_delete: cascade);
  - refresh_search_index() is a full rebuild: it upserts every item's row and
    deletes the rows of items that are gone, so a concurrent refresh meets no
    duplicate key. It holds an exclusive advisory lock on search_index while
    the app's writes to the sources hold a shared one (statement trigger
    <table>_search_index_hold), so a refresh never overwrites a newer write
    with what its snapshot saw. Call it in a transaction of its own.
  Both SQL functions are bodies of the model's own compiled query, so the
  document is defined once; BEGIN ATOMIC stores them parsed, bound to the tables
  rather than their names, so they keep working after publish renames the schema.
#}

{# search_index's post-hook: its two functions. #}
{% macro create_search_index_functions() %}
    {%- set s = adapter.quote(this.schema) -%}
    {%- set columns = model.columns.keys() | list -%}
    {%- set keys = ['id', 'entity_type', 'entity_id'] -%}
    {%- set values = columns | reject('in', keys) | list -%}
    create function {{ s }}.search_index_upsert(item_type text, item_ids uuid[]) returns void
    language sql
    begin atomic
        insert into {{ this }} ({{ columns | join(', ') }})
        select {{ columns | join(', ') }} from ({{ model.compiled_code }}) as documents
        where documents.entity_type = item_type and documents.entity_id = any(item_ids)
        on conflict (entity_type, entity_id) do update set
            {%- for column in values %}
            {{ column }} = excluded.{{ column }}{{ "," if not loop.last }}
            {%- endfor %};
    end;
    comment on function {{ s }}.search_index_upsert(text, uuid[]) is
        'Writes the items'' search_index rows from their table (triggers <table>_search_index_sync_*).';

    create function {{ s }}.refresh_search_index() returns void
    language sql
    begin atomic
        select pg_advisory_xact_lock('{{ this }}'::regclass::oid::bigint);
        insert into {{ this }} ({{ columns | join(', ') }})
        select {{ columns | join(', ') }} from ({{ model.compiled_code }}) as documents
        on conflict (entity_type, entity_id) do update set
            {%- for column in values %}
            {{ column }} = excluded.{{ column }}{{ "," if not loop.last }}
            {%- endfor %}
        where
            {%- for column in values %}
            {{ "or " if not loop.first }}{{ this.identifier }}.{{ column }} is distinct from excluded.{{ column }}
            {%- endfor %};
        delete from {{ this }} as indexed
        where not exists (
            select from ({{ model.compiled_code }}) as documents
            where documents.entity_type = indexed.entity_type and documents.entity_id = indexed.entity_id
        );
    end;
    comment on function {{ s }}.refresh_search_index() is
        'Rebuilds search_index from its sources; the triggers keep it current, so this is only a repair.';

{% endmacro %}

{# The trigger functions of the search sources, created with the others (app_trigger_functions). #}
{% macro search_index_trigger_functions(schema) %}
    {%- set s = adapter.quote(schema) -%}
    create function {{ s }}.search_index_hold() returns trigger
    language plpgsql as $$
    begin
        -- taken before the statement locks any row; refresh_search_index() waits for it, and it for a refresh
        perform pg_advisory_xact_lock_shared(format('%I.search_index', tg_table_schema)::regclass::oid::bigint);
        return null;
    end;
    $$;
    comment on function {{ s }}.search_index_hold() is
        'Holds search_index against a concurrent refresh while the app writes a search source.';

    create function {{ s }}.search_index_sync() returns trigger
    language plpgsql as $$
    -- arg: the entity_type of the written table; the statement's rows are the transition table `changed`
    begin
        execute format('select %I.search_index_upsert($1, array(select id from changed))', tg_table_schema)
            using tg_argv[0];
        return null;
    end;
    $$;
    comment on function {{ s }}.search_index_sync() is
        'Writes the search_index rows of the items a statement inserted or updated (triggers <table>_search_index_sync_*).';
{% endmacro %}
