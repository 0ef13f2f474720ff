{#
  The merge base (scripts/migrate --carry-forward): a green full build keeps
  the v2 that v1 alone produced, before any merge, as schema
  v2_base_<its run_id>: a copy of each mart of the shadow that holds v1's
  rows (not the derived search_index, whose columns are all of origin
  derived). Once the build is published, that copy is the base of every merge
  into the live schema it became: the app's changes are live v2 minus the
  base, v1's the next build minus the base, whatever came between. A base is
  kept while a schema its build published exists (live v2, a v2_backup_*, a
  v2_rolledback_*), so the base of a schema a rollback makes live again is
  still there; the others (builds never published, or whose schemas were
  cleaned up) are dropped by the next green build.
#}
{% macro keep_merge_base() %}
    {%- set meta = adapter.quote(var('meta_schema')) -%}
    {%- set kept = [] -%}
    {%- for node in graph.nodes.values() if node.resource_type == 'model' and node.config.schema == 'v2' -%}
        {%- if node.columns.values() | rejectattr('config.meta.origin', 'equalto', 'derived') | list -%}
            {%- do kept.append(node.name) -%}
        {%- endif -%}
    {%- endfor %}
    do $keep$
    declare
        build bigint := (
            select run_id from {{ meta }}.runs
            where dbt_invocation_id = {{ sql_literal(invocation_id) }} and full_build
        );
        base text;
        mart text;
    begin
        if build is null then
            return;
        end if;
        base := 'v2_base_' || build;
        execute format('create schema %I', base);
        foreach mart in array {{ sql_literal('{' ~ (kept | sort | join(',')) ~ '}') }}::text[] loop
            execute format(
                'create table %1$I.%2$I as table %3$I.%2$I; alter table %1$I.%2$I add primary key (id)',
                base, mart, {{ sql_literal(var('marts_schema')) }}
            );
        end loop;
        for base in
            select nspname from pg_namespace
            where nspname ~ '^v2_base_[0-9]+$' and substr(nspname, 9)::bigint <> build
                and not exists (
                    select from {{ meta }}.runs as publish
                    where publish.command = 'publish' and publish.result = 'published'
                        and publish.build_run_id = substr(nspname, 9)::bigint
                        and publish.published_schema_oid in (select oid from pg_namespace)
                )
        loop
            execute format('drop schema %I cascade', base);
        end loop;
    end
    $keep$;
{% endmacro %}
