{#
  search_index is kept current by the database itself, and pays only for what changed:
  - a search source (search_index's config.meta.search_sources) gets, once its
    rows are in (mart_post_hook), the statement trigger
    <table>_search_index_sync_insert and the row trigger _sync_update, whose
    WHEN compares the listed columns (an UPDATE of sort_order or status calls
    nothing); both only queue the items in search_index_queue
    (search_index_enqueue), and the transaction's first queueing adds a marker
    row whose deferred constraint trigger writes every queued item's row when
    the transaction commits (search_index_drain): one statement per entity type
    per transaction, so a write of one row per statement pays an insert into the
    queue, not a document; the rows are current the moment the transaction
    commits (inside it, once SET CONSTRAINTS search_index_queue_drain IMMEDIATE
    ran); a hard delete removes the row with the item (search_index's
    on_entity_delete: cascade);
  - a parent (config.meta.search_parents: domains, areas, projects) gets
    <table>_search_index_sync_children: soft-deleting, restoring or moving one
    re-indexes the items under it, whose is_active includes their parents';
  - search_index_upsert_<entity_type>(schema, ids) writes those items' rows,
    from the model's own query over that one source (search_documents), in
    PL/pgSQL so that a session plans it once;
  - refresh_search_index() is a repair that takes no table or advisory lock:
    it rewrites the rows whose document differs from the sources, inserts the
    missing ones (one statement per source) and deletes those of vanished
    items, each statement with a snapshot of its own; it skips a row a writer
    changed since that snapshot (its xmin moved) and an item deleted meanwhile,
    so it never overwrites a newer write. A write waits for it only on a row it
    repaired, until it commits.
  The functions' bodies are the model's query, so the document is defined once;
  refresh_search_index() is BEGIN ATOMIC, stored parsed, bound to the tables and
  functions rather than their names, so it keeps working after publish renames
  the schema.
#}

{# The text-search configuration of documents and queries (search_index_trigger_functions says why). #}
{% macro search_configuration() -%}
    'pg_catalog.english'::regconfig
{%- endmacro %}

{# A search document's text: accents folded (fold_accents, created with the trigger functions in `schema`). #}
{% macro search_text(schema, column) -%}
    {{ adapter.quote(schema) ~ '.' if schema }}fold_accents(coalesce({{ column }}, ''))
{%- endmacro %}

{# search_index's config.meta (search_sources, search_parents), from any model's context. #}
{% macro search_index_meta() %}
    {%- if execute -%}
        {{ return(search_index_node().config.meta) }}
    {%- endif -%}
    {{ return({}) }}
{% endmacro %}

{#
  The search documents of `tables` (sources of search_index's config.meta.search_sources), as one query: each
  source's title, keywords and body as declared, is_active the item's own AND its parents' (an item under a
  soft-deleted project, domain or project's area is out of search), the weighted tsvector. The model is this
  over every source; search_index_upsert_<type>() is it over one, so a trigger plans one branch.
#}
{% macro search_documents(tables, qualified=true) %}
    {%- set sources = model.config.meta.search_sources -%}
    {%- set schema = this.schema if qualified else none -%}
with

{% for table in tables -%}
{{ table }} as (

    select * from {{ ref(table) if qualified else ref(table).identifier }}

),

{% endfor -%}
{#- the parents, each imported once per use: a CTE read twice is materialized whole, and a trigger that indexes
    a few items must reach their parents through the primary keys #}
item_domains as (

    select * from {{ ref('domains') if qualified else 'domains' }}

),

parent_projects as (

    select * from {{ ref('projects') if qualified else 'projects' }}

),

project_domains as (

    select * from {{ ref('domains') if qualified else 'domains' }}

),

project_areas as (

    select * from {{ ref('areas') if qualified else 'areas' }}

),

documents as (
{% for table in tables %}
    {%- set source = sources[table] %}
    select
        '{{ entity_type_of(table) }}'::text as entity_type,
        id as entity_id,
        {%- for column in ['domain_id', 'project_id'] %}
        {{ source.get(column, column) if source.get(column, column) is not none else 'null::uuid' }} as {{ column }},
        {%- endfor %}
        {%- for part in ['title', 'keywords', 'body'] %}
        {{ source[part] if source.get(part) else 'null::text' }} as {{ part }},
        {%- endfor %}
        is_active,
        created_at,
        updated_at
    from {{ table }}
    {%- if not loop.last %}

    union all
    {% endif %}
{% endfor %}
),

-- a project is live when it, its domain and its area are active
live_projects as (

    select
        parent_projects.id as project_id,
        parent_projects.is_active
        and coalesce(project_domains.is_active, true)
        and coalesce(project_areas.is_active, true) as is_live
    from parent_projects
    left join project_domains on parent_projects.domain_id = project_domains.id
    left join project_areas on parent_projects.area_id = project_areas.id

),

final as (

    select
        documents.entity_type,
        documents.entity_id,
        documents.domain_id,
        documents.project_id,
        documents.title,
        documents.body,
        documents.created_at,
        documents.updated_at,
        md5(documents.entity_type || ':' || documents.entity_id)::uuid as id,
        documents.is_active
        and coalesce(live_projects.is_live, true)
        and coalesce(item_domains.is_active, true) as is_active,
        setweight(to_tsvector({{ search_configuration() }}, {{ search_text(schema, 'documents.title') }}), 'A')
        || setweight(to_tsvector({{ search_configuration() }}, {{ search_text(schema, 'documents.keywords') }}), 'B')
        || setweight(to_tsvector({{ search_configuration() }}, {{ search_text(schema, 'documents.body') }}), 'C')
        as document
    from documents
    left join live_projects on documents.project_id = live_projects.project_id
    left join item_domains on documents.domain_id = item_domains.id

)

select * from final
{%- endmacro %}

{# search_index's post-hook: its functions. #}
{% macro create_search_index_functions() %}
    {%- set s = adapter.quote(this.schema) -%}
    {%- set columns = model.columns.keys() | list -%}
    {%- set keys = ['id', 'entity_type', 'entity_id'] -%}
    {%- set values = columns | reject('in', keys) | list -%}
    {%- set content = values | reject('in', ['created_at', 'updated_at']) | list -%}
    {%- for table in model.config.meta.search_sources %}
    {%- set entity_type = entity_type_of(table) %}
    create function {{ s }}.search_index_upsert_{{ entity_type }}(item_schema text, item_ids uuid[]) returns void
    language plpgsql as $$
    -- PL/pgSQL keeps the plan of this statement for the session (a SQL function plans it on every call): its
    -- names are unqualified, read in item_schema (the schema of the written table, whatever publish named it)
    declare
        saved_path text := current_setting('search_path');
    begin
        perform set_config('search_path', format('%I, pg_temp', item_schema), true);
        -- first wait for a writer of these rows (a parent's soft delete re-indexing them) to commit: the next
        -- statement's snapshot then sees its write, where ON CONFLICT would overwrite it with an older document
        perform from {{ this.identifier }}
        where entity_type = '{{ entity_type }}' and entity_id = any(item_ids) order by id for update;
        insert into {{ this.identifier }} ({{ columns | join(', ') }})
        select {{ columns | join(', ') }} from ({{ search_documents([table], qualified=false) }}) as documents
        where documents.entity_id = any(item_ids)
        on conflict (entity_type, entity_id) do update set
            {%- for column in values %}
            {{ column }} = excluded.{{ column }}{{ "," if not loop.last }}
            {%- endfor %};
        perform set_config('search_path', saved_path, true);
    end;
    $$;
    comment on function {{ s }}.search_index_upsert_{{ entity_type }}(text, uuid[]) is
        'Writes these {{ table }} rows'' search_index rows (triggers <table>_search_index_sync_*).';
    {%- endfor %}

    create function {{ s }}.refresh_search_index() returns void
    language sql
    begin atomic
        update {{ this }} set
            {%- for column in content %}
            {{ column }} = documents.{{ column }}{{ "," if not loop.last }}
            {%- endfor %}
        from ({{ model.compiled_code }}) as documents
        inner join {{ this }} as seen
            on documents.entity_type = seen.entity_type and documents.entity_id = seen.entity_id
        where
            {{ this.identifier }}.id = seen.id
            -- a writer changed the row since this statement's snapshot: its version is newer than ours
            and {{ this.identifier }}.xmin = seen.xmin
            and (
                {%- for column in content %}
                {{ "or " if not loop.first }}seen.{{ column }} is distinct from documents.{{ column }}
                {%- endfor %}
            );
        {%- for table in model.config.meta.search_sources %}
        {%- set entity_type = entity_type_of(table) %}
        -- the missing rows of {{ table }} whose items still exist: FOR KEY SHARE skips one deleted meanwhile
        insert into {{ this }} ({{ columns | join(', ') }})
        select {{ columns | join(', ') }} from ({{ search_documents([table]) }}) as documents
        where documents.entity_id in (
            select items.id from {{ ref(table) }} as items
            where not exists (
                select from {{ this }} as indexed
                where indexed.entity_type = '{{ entity_type }}' and indexed.entity_id = items.id
            )
            for key share of items
        )
        on conflict (entity_type, entity_id) do nothing;
        {%- endfor %}
        delete from {{ this }}
        where not exists (
            select from ({{ model.compiled_code }}) as documents
            where documents.entity_type = {{ this.identifier }}.entity_type
                and documents.entity_id = {{ this.identifier }}.entity_id
        );
    end;
    comment on function {{ s }}.refresh_search_index() is
        'Repairs search_index from its sources without blocking writes; the triggers keep it current.';
{% endmacro %}

{# The search triggers of a mart, as contract_triggers dicts. #}
{% macro search_index_triggers(node) %}
    {%- set triggers = [] -%}
    {%- set meta = search_index_meta() -%}
    {%- set source = meta.get('search_sources', {}).get(node.name) -%}
    {%- if source -%}
        {%- do triggers.append({
            'name': node.alias ~ '_search_index_sync_insert', 'timing': 'after', 'events': 'insert',
            'referencing': 'new table as new_rows', 'level': 'statement', 'function': 'search_index_enqueue',
            'args': [entity_type_of(node.name)]}) -%}
        {#- a row trigger: its WHEN skips, without a call, a row whose document columns are as they were #}
        {%- set changed = [] -%}
        {%- for column in source.reads -%}
            {%- do changed.append('old.' ~ column ~ ' is distinct from new.' ~ column) -%}
        {%- endfor -%}
        {%- do triggers.append({
            'name': node.alias ~ '_search_index_sync_update', 'timing': 'after', 'events': 'update',
            'level': 'row', 'when': changed | join(' or '), 'function': 'search_index_enqueue',
            'args': [entity_type_of(node.name)]}) -%}
    {%- endif -%}
    {%- set parent_columns = meta.get('search_parents', {}).get(node.name) -%}
    {%- if parent_columns -%}
        {%- do triggers.append({
            'name': node.alias ~ '_search_index_sync_children', 'timing': 'after', 'events': 'update',
            'referencing': 'old table as old_rows new table as new_rows', 'level': 'statement',
            'function': 'search_index_sync_children', 'args': [entity_type_of(node.name)] + parent_columns}) -%}
    {%- endif -%}
    {{ return(triggers) }}
{% endmacro %}

{# The rows of new_rows whose columns `columns` differ from old_rows (transition tables), as SQL returning ids. #}
{% macro changed_ids_sql() -%}
    'select array(select new_rows.id from new_rows inner join old_rows using (id)'
    ' where (%s) is distinct from (%s))',
    (select string_agg(format('new_rows.%I', c), ', ') from unnest(tg_argv[1:]) as c),
    (select string_agg(format('old_rows.%I', c), ', ') from unnest(tg_argv[1:]) as c)
{%- endmacro %}

{#
  The trigger functions of search (created with the others, app_trigger_functions) and the functions the
  app searches with. Documents and queries use the configuration `english` (stemming: "headings" finds
  "heading") on text whose accents fold_accents() removed ("zurich" finds "Zürich"). Not the unaccent
  extension: the embedded PostgreSQL 16 (pgserver) does not ship it, and a configuration that maps it only
  where the server has it would make v2's DDL depend on the server; fold_accents() is the same everywhere:
  it decomposes the text (NFD) and drops the combining diacritics, and maps the Latin letters that do not
  decompose (ø, đ, ł, ı, ħ, ŧ, ß, æ, œ); ASCII text is returned as it is, and text without those letters
  skips their replace() and translate(), which change nothing there: one match of a pattern costs less
  (issue 30 at 1,000x: folding was 41 of the build's 91 CPU seconds of search documents, 20 with the match).
#}
{% macro search_index_trigger_functions(schema) %}
    {%- set s = adapter.quote(schema) -%}
    create function {{ s }}.fold_accents(words text) returns text
    language sql immutable parallel safe
    return case
        when octet_length(words) = length(words) then words  -- ASCII: nothing to fold, and most text is
        else regexp_replace(normalize(case
            when words ~ '[ßæÆœŒØøĐđŁłıĦħŦŧ]' then translate(
                replace(replace(replace(replace(replace(words, 'ß', 'ss'), 'æ', 'ae'), 'Æ', 'AE'), 'œ', 'oe'), 'Œ', 'OE'),
                'ØøĐđŁłıĦħŦŧ', 'OoDdLliHhTt')
            else words
        end, nfd), '[\u0300-\u036f]', '', 'g')
    end;
    comment on function {{ s }}.fold_accents(text) is
        'The text without diacritics of Latin letters, as search documents and queries read it.';

    create function {{ s }}.search_query(words text) returns tsquery
    language sql stable parallel safe
    begin atomic
        select websearch_to_tsquery({{ search_configuration() }}, {{ s }}.fold_accents(words));
    end;
    comment on function {{ s }}.search_query(text) is
        'What the user typed in the search box as a tsquery: document @@ search_query(:q).';

    create function {{ s }}.search_prefix_query(words text) returns tsquery
    language sql stable parallel safe
    -- one expression without FROM: the planner inlines it and folds what was typed into one constant tsquery per
    -- query (a body with FROM was called again for every row a newest-first walk filtered); each word quoted
    -- (the separators, quotes among them, are gone), then :*
    begin atomic
        select to_tsquery({{ search_configuration() }}, coalesce('''' || nullif(regexp_replace(regexp_replace(
            {{ s }}.fold_accents(words), '^[[:space:][:punct:]]+|[[:space:][:punct:]]+$', '', 'g'),
            '[[:space:][:punct:]]+', ''':* & ''', 'g'), '') || ''':*', ''));
    end;
    comment on function {{ s }}.search_prefix_query(text) is
        'Search as you type: every word typed so far as a prefix (document @@ search_prefix_query(:q)).';

    create function {{ s }}.search_index_enqueue() returns trigger
    language plpgsql as $$
    -- arg: the entity_type of the written table. Queues the items a statement inserted (a statement trigger,
    -- transition table new_rows) or the row whose document columns an UPDATE changed (a row trigger whose WHEN
    -- compares them), and on the transaction's first queueing its marker row, whose deferred trigger
    -- search_index_queue_drain writes their search rows at commit (search_index_drain). Static statements, read
    -- in the table's schema: the session plans them once
    declare
        saved_path text := current_setting('search_path');
        transaction_id text := pg_current_xact_id()::text;
    begin
        perform set_config('search_path', format('%I, pg_temp', tg_table_schema), true);
        if tg_level = 'ROW' then
            insert into search_index_queue (entity_type, entity_id) values (tg_argv[0], new.id);
        else
            insert into search_index_queue (entity_type, entity_id) select tg_argv[0], id from new_rows;
        end if;
        if current_setting('lifeos.search_index_drain', true) is distinct from transaction_id then
            -- noted before the insert: under SET CONSTRAINTS ... IMMEDIATE the marker's drain runs at the insert's
            -- end and clears the note, so the next write queues a marker of its own
            perform set_config('lifeos.search_index_drain', transaction_id, true);
            insert into search_index_queue (entity_type) values (tg_argv[0]);
        end if;
        perform set_config('search_path', saved_path, true);
        return null;
    end;
    $$;
    comment on function {{ s }}.search_index_enqueue() is
        'Queues the items a statement inserted, or whose document columns it changed, for search_index_drain.';

    create function {{ s }}.search_index_drain() returns trigger
    language plpgsql as $$
    -- the deferred trigger of the transaction's marker row in search_index_queue: at commit (or SET CONSTRAINTS
    -- ... IMMEDIATE) it empties the queue of this transaction and writes the queued items' search rows, one
    -- statement per entity type; a later write of the transaction queues a new marker
    declare
        item record;
    begin
        perform set_config('lifeos.search_index_drain', '', true);
        for item in execute format(
            'with drained as (delete from %I.search_index_queue returning entity_type, entity_id)'
            ' select entity_type, array_agg(distinct entity_id) as ids from drained'
            ' where entity_id is not null group by entity_type order by entity_type', tg_table_schema)
        loop
            execute format('select %I.%I($1, $2)', tg_table_schema, 'search_index_upsert_' || item.entity_type)
                using tg_table_schema, item.ids;
        end loop;
        return null;
    end;
    $$;
    comment on function {{ s }}.search_index_drain() is
        'Writes the search_index rows of the items this transaction queued, once, when it commits.';

    create function {{ s }}.search_index_sync_children() returns trigger
    language plpgsql as $$
    -- args: the entity_type of the written parent (domain, area, project), then the columns the liveness reads
    declare
        parents uuid[];
        projects uuid[];
        domains uuid[] := '{}';
        item record;
    begin
        execute format({{ changed_ids_sql() }}) into parents;
        if cardinality(parents) = 0 then
            return null;
        end if;
        if tg_argv[0] = 'project' then
            projects := parents;
        else
            execute format('select array(select id from %I.projects where %I = any($1))', tg_table_schema,
                tg_argv[0] || '_id') into projects using parents;
            if tg_argv[0] = 'domain' then
                domains := parents;
            end if;
        end if;
        for item in execute format(
            'select entity_type, array_agg(entity_id) as ids from %I.search_index'
            ' where project_id = any($1) or domain_id = any($2) group by entity_type', tg_table_schema)
            using projects, domains
        loop
            execute format('select %I.%I($1, $2)', tg_table_schema, 'search_index_upsert_' || item.entity_type)
                using tg_table_schema, item.ids;
        end loop;
        return null;
    end;
    $$;
    comment on function {{ s }}.search_index_sync_children() is
        'Re-indexes the items under the domains, areas or projects a statement soft-deleted, restored or moved.';
{% endmacro %}
