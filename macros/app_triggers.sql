{#
  The rules v2 enforces on the app's own writes, as triggers, each derived from
  what the YAML already declares so nothing is declared twice:
  - every table with updated_at: set_updated_at keeps it current;
  - a polymorphic table (rule polymorphic_reference_resolves of its
    mart_checks): refuse_dangling_<table> refuses a statement whose
    rows name no row (set-based, per statement), and each entity table
    (macro entity_type_models) runs delete_polymorphic_references on delete,
    which applies each polymorphic table's `config.meta.on_entity_delete`;
  - a graph with the rule `acyclic`: refuse_cycle refuses the edge that would
    close a loop, locking the roots of the trees a move touches (a tree:
    tasks, bookmark_folders) or the whole graph (task_dependencies);
  - a search source or parent (search_index's config.meta.search_sources,
    search_parents): search_index_enqueue, search_index_drain (on
    search_index_queue, at commit) and search_index_sync_children keep
    search_index current (macros/search_index.sql);
  - `config.meta.triggers` of a model: any other trigger, e.g. daily_focus's
    domain derived from its task.
  The functions are created once per build in the shadow schema
  (app_trigger_functions, from reset_shadow_schema); they name other tables
  through TG_TABLE_SCHEMA, so they keep working once publish renames the schema.
  The triggers are created after the bulk load (mart_post_hook), so the
  migration pays nothing per row, and search_index is built set-based.
#}

{#
  The triggers of a mart, as dicts: name, timing, events, level (row or
  statement), function, args, and optionally referencing (transition tables),
  when and constraint (create_trigger).
#}
{% macro contract_triggers(node) %}
    {%- set triggers = [] -%}
    {%- if 'updated_at' in node.columns -%}
        {%- do triggers.append({
            'name': node.alias ~ '_set_updated_at', 'timing': 'before', 'events': 'update',
            'level': 'row', 'function': 'set_updated_at', 'args': []}) -%}
    {%- endif -%}
    {%- set reference = attached_rule(node, 'polymorphic_reference_resolves') -%}
    {%- if reference is not none -%}
        {%- for event, rows in [('insert', 'new table as new_rows'),
                                ('update', 'old table as old_rows new table as new_rows')] -%}
            {%- do triggers.append({
                'name': node.alias ~ '_entity_exists_' ~ event, 'timing': 'after', 'events': event,
                'referencing': rows, 'level': 'statement', 'function': 'refuse_dangling_' ~ node.alias,
                'args': []}) -%}
        {%- endfor -%}
    {%- endif -%}
    {%- if entity_type_of(node.name) -%}
        {%- do triggers.append({
            'name': node.alias ~ '_delete_references', 'timing': 'after', 'events': 'delete',
            'level': 'row', 'function': 'delete_polymorphic_references', 'args': [entity_type_of(node.name)]}) -%}
    {%- endif -%}
    {%- set graph_edge = attached_rule(node, 'acyclic') -%}
    {%- if graph_edge is not none -%}
        {%- do triggers.append({
            'name': node.alias ~ '_no_cycle', 'timing': 'before',
            'events': 'insert or update of ' ~ graph_edge.child_column ~ ', ' ~ graph_edge.parent_column,
            'level': 'row', 'function': 'refuse_cycle', 'args': [graph_edge.child_column, graph_edge.parent_column]}) -%}
    {%- endif -%}
    {%- for trigger in search_index_triggers(node) -%}
        {%- do triggers.append(trigger) -%}
    {%- endfor -%}
    {%- for trigger in node.config.meta.get('triggers', []) -%}
        {%- do triggers.append(trigger) -%}
    {%- endfor -%}
    {{ return(triggers) }}
{% endmacro %}

{#
  `create trigger` for one entry of contract_triggers on `relation`; the function is named through its schema.
  `constraint: true` makes it a constraint trigger fired when the transaction commits (deferrable initially
  deferred); `when` is its condition on old/new, evaluated as the row is written.
#}
{% macro create_trigger(trigger, relation) -%}
    create {{ 'constraint ' if trigger.constraint }}trigger {{ trigger.name }}
        {{ trigger.timing }} {{ trigger.events }} on {{ relation }}
        {%- if trigger.constraint %} deferrable initially deferred{% endif %}
        {%- if trigger.referencing %} referencing {{ trigger.referencing }}{% endif %}
        for each {{ trigger.level }}
        {%- if trigger.when %} when ({{ trigger.when }}){% endif %} execute function {{ adapter.quote(relation.schema) }}.{{ trigger.function }}(
            {%- for arg in trigger.args %}'{{ arg | replace("'", "''") }}'{{ ", " if not loop.last }}{% endfor -%}
        );
{%- endmacro %}

{# The entity_type whose rows `table` holds (macro entity_type_models), or none. #}
{% macro entity_type_of(table) %}
    {%- for entity_type, model_name in entity_type_models().items() if model_name == table -%}
        {{ return(entity_type) }}
    {%- endfor -%}
    {{ return(none) }}
{% endmacro %}

{# The search_index model (execute time only: search_index_meta). #}
{% macro search_index_node() %}
    {{ return(graph.nodes.values() | selectattr('name', 'equalto', 'search_index') | first) }}
{% endmacro %}

{#
  Each polymorphic table, as a dict (table, column, id_column, where: the
  condition under which a row is checked, entity_types, on_entity_delete):
  what refuse_dangling_<table> checks, and what delete_polymorphic_references
  does when an entity goes. on_entity_delete is `cascade` (the rows go with their entity) or
  `{insert: {column: value ...}}` (the rows stay as history, and one row with
  those values records the deletion).
#}
{% macro polymorphic_tables() %}
    {%- set tables = [] -%}
    {%- if execute -%}
        {%- for node in graph.nodes.values() if node.resource_type == 'model' -%}
            {%- set reference = attached_rule(node, 'polymorphic_reference_resolves') -%}
            {%- if reference is not none -%}
                {%- set rule = node.config.meta.get('on_entity_delete') -%}
                {%- if not rule -%}
                    {{ exceptions.raise_compiler_error(
                        node.name ~ ": a polymorphic table states config.meta.on_entity_delete (cascade or {insert: ...})") }}
                {%- endif -%}
                {%- do tables.append({
                    'table': node.alias, 'column': reference.column_name, 'id_column': reference.id_column,
                    'where': reference.get('where') or 'true', 'entity_types': reference.entity_types,
                    'on_entity_delete': rule}) -%}
            {%- endif -%}
        {%- endfor -%}
    {%- endif -%}
    {{ return(tables | sort(attribute='table')) }}
{% endmacro %}

{#
  refuse_dangling_<table>'s statement: into `missing`, the first row of new_rows (among those `changed` keeps)
  whose polymorphic reference names no row of its entity_type's table, each named row locked FOR KEY SHARE.
#}
{% macro dangling_reference_query(ref, changed) -%}
select n.{{ ref.column }} as entity_type, n.{{ ref.id_column }} as entity_id, case n.{{ ref.column }}
    {%- for entity_type in ref.entity_types %}
    when '{{ entity_type }}' then '{{ entity_type_models()[entity_type] }}'
    {%- endfor %}
end as target
into missing
from new_rows as n
where ({{ ref.where }}) and {{ changed }}
    and not case n.{{ ref.column }}
        {%- for entity_type in ref.entity_types %}
        when '{{ entity_type }}' then exists (select from {{ entity_type_models()[entity_type] }} as t
            where t.id = n.{{ ref.id_column }} for key share)
        {%- endfor %}
        else true  -- an entity_type the CHECK refuses
    end
limit 1;
{%- endmacro %}

{# on-run-start of a build (reset_shadow_schema): the trigger functions, in `schema`. #}
{% macro app_trigger_functions(schema) %}
    {%- set s = adapter.quote(schema) -%}
    create function {{ s }}.set_updated_at() returns trigger
    language plpgsql as $$
    begin
        new.updated_at := now();
        return new;
    end;
    $$;
    comment on function {{ s }}.set_updated_at() is
        'Keeps updated_at current on every UPDATE (trigger <table>_set_updated_at).';

    {%- for ref in polymorphic_tables() %}
    create function {{ s }}.refuse_dangling_{{ ref.table }}() returns trigger
    language plpgsql as $$
    -- the first row of the statement (transition table new_rows; on UPDATE, one whose reference changed) that
    -- names no row, in one static statement the session plans once (its names read in the table's schema);
    -- FOR KEY SHARE, as a foreign key does: the entities named cannot be deleted before this commits
    declare
        saved_path text := current_setting('search_path');
        missing record;
    begin
        perform set_config('search_path', format('%I, pg_temp', tg_table_schema), true);
        if tg_op = 'INSERT' then
            {{ dangling_reference_query(ref, 'true') | indent(12) }}
        else
            {{ dangling_reference_query(ref, 'not exists (select from old_rows as o where o.id = n.id'
                ~ ' and o.' ~ ref.column ~ ' is not distinct from n.' ~ ref.column
                ~ ' and o.' ~ ref.id_column ~ ' is not distinct from n.' ~ ref.id_column ~ ')') | indent(12) }}
        end if;
        perform set_config('search_path', saved_path, true);
        if missing.entity_type is not null then
            raise exception using
                errcode = 'foreign_key_violation',
                message = format('%s: %s %s does not exist', tg_table_name, missing.entity_type, missing.entity_id),
                hint = format('{{ ref.column }} and {{ ref.id_column }} must name an existing %s row', missing.target);
        end if;
        return null;
    end;
    $$;
    comment on function {{ s }}.refuse_dangling_{{ ref.table }}() is
        'Refuses {{ ref.table }} rows whose ({{ ref.column }}, {{ ref.id_column }}) names no row, per statement (triggers {{ ref.table }}_entity_exists_*).';
    {% endfor %}

    create function {{ s }}.delete_polymorphic_references() returns trigger
    language plpgsql as $$
    -- arg: the entity_type of the deleted row's table
    begin
        {%- for ref in polymorphic_tables() %}
        if tg_argv[0] in ({% for t in ref.entity_types %}'{{ t }}'{{ ", " if not loop.last }}{% endfor %}) then
            {%- if ref.on_entity_delete == 'cascade' %}
            execute format('delete from %I.{{ ref.table }} where {{ ref.column }} = $1 and {{ ref.id_column }} = $2',
                tg_table_schema) using tg_argv[0], old.id;
            {%- else %}
            {%- set values = ref.on_entity_delete.insert %}
            execute format('insert into %I.{{ ref.table }} ({{ ref.column }}, {{ ref.id_column }}, {{ values.keys() | join(", ") }})'
                ' values ($1, $2{% for _ in values %}, ${{ loop.index + 2 }}{% endfor %})', tg_table_schema)
                using tg_argv[0], old.id{% for value in values.values() %}, '{{ value }}'::text{% endfor %};
            {%- endif %}
        end if;
        {%- endfor %}
        return null;
    end;
    $$;
    comment on function {{ s }}.delete_polymorphic_references() is
        'Applies each polymorphic table''s rule when an entity is deleted (trigger <table>_delete_references).';

    create function {{ s }}.refuse_cycle() returns trigger
    language plpgsql as $$
    -- args: the child and the parent column of an edge; child column `id` makes the table a tree (parent_id)
    declare
        child uuid := (to_jsonb(new) ->> tg_argv[0])::uuid;
        parent uuid := (to_jsonb(new) ->> tg_argv[1])::uuid;
        -- $1's ancestors, $1 included, each with its distance from $1; then the query that ends this text
        ancestors text := format(
            'with recursive ancestors (node, depth) as ('
            '    select $1, 0'
            '    union all'
            '    select edges.%2$I, ancestors.depth + 1 from %3$I.%4$I as edges'
            '    inner join ancestors on edges.%1$I = ancestors.node'
            '    where edges.%2$I is not null'
            ') ', tg_argv[0], tg_argv[1], tg_table_schema, tg_table_name);
        root_query text := 'select (select node from ancestors order by depth desc limit 1),'
            ' exists (select from ancestors where node = $2)';
        child_root uuid;
        parent_root uuid;
        roots uuid[];
        held uuid[] := '{}';
        root uuid;
        closes_loop boolean;
    begin
        if parent is null or (tg_argv[0] = 'id' and tg_op = 'INSERT') then
            return new;  -- a new row of a tree has no descendants: it cannot close a loop
        end if;
        if tg_op = 'UPDATE' and (to_jsonb(old) ->> tg_argv[0], to_jsonb(old) ->> tg_argv[1])
            = (to_jsonb(new) ->> tg_argv[0], to_jsonb(new) ->> tg_argv[1]) then
            return new;  -- the edge is as it was
        end if;
        if tg_argv[0] <> 'id' then
            -- an edge table (a graph, not a tree): one writer of the graph at a time
            perform pg_advisory_xact_lock(tg_relid::bigint);
            execute ancestors || root_query into parent_root, closes_loop using parent, child;
        else
            -- a move in a tree: lock the roots of the trees it takes the row from and to, in their order, so
            -- that moves of other trees go on; any move that changes which rows a tree holds locks its root
            -- too, so once the roots are locked and still the roots, the walk below sees a tree that cannot
            -- change until this commits
            loop
                execute ancestors || root_query into child_root, closes_loop using child, parent;
                execute ancestors || root_query into parent_root, closes_loop using parent, child;
                roots := array(select distinct unnest(array[child_root, parent_root]) order by 1);
                exit when roots <@ held;
                foreach root in array roots loop
                    continue when root = any(held);
                    if held = '{}' then
                        perform pg_advisory_xact_lock(tg_relid::integer, hashtext(root::text));
                    elsif not pg_try_advisory_xact_lock(tg_relid::integer, hashtext(root::text)) then
                        -- a root that moved while we waited: waiting for it out of order could deadlock
                        raise exception using
                            errcode = 'serialization_failure',
                            message = format('%s: %s %s moved to another tree meanwhile, retry', tg_table_name,
                                tg_argv[0], child);
                    end if;
                end loop;
                held := held || roots;
            end loop;
        end if;
        if closes_loop then
            raise exception using
                errcode = 'check_violation',
                message = format('%s: %s %s -> %s %s would close a cycle', tg_table_name, tg_argv[0], child,
                    tg_argv[1], parent);
        end if;
        return new;
    end;
    $$;
    comment on function {{ s }}.refuse_cycle() is
        'Refuses an edge that closes a cycle (trigger <table>_no_cycle).';

    create function {{ s }}.fill_domain_id_from_task() returns trigger
    language plpgsql as $$
    begin
        if new.domain_id is null and new.task_id is not null then
            execute format('select domain_id from %I.tasks where id = $1', tg_table_schema)
                into new.domain_id using new.task_id;
        end if;
        return new;
    end;
    $$;
    comment on function {{ s }}.fill_domain_id_from_task() is
        'Derives domain_id from task_id when the row leaves it NULL (plan 3.8).';

    {{ search_index_trigger_functions(schema) }}
{% endmacro %}
