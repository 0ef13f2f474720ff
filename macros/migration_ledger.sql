{#
  The migration's ledger, in the durable schema var('meta_schema') that no
  build drops. Every `dbt build` / `dbt run` that writes v2 (is_writing_v2: it
  materializes a mart into the shadow, var marts_schema) gets a row in
  <meta>.runs when it starts (result 'building'), and its verdict when it ends ('built' only when it was a full `dbt build` and every model and test
  passed). A build killed part way through stays 'building' and is marked
  'interrupted' by the next run (scripts/run_lock.py). Each publish, rollback
  and clean-up of scripts/publish gets a row of its own; a publish takes
  only the shadow of a 'built' run, which its build_run_id names.
  A green full build with var accept_rejects records the losses it accepted in
  <meta>.accepted_losses (macros/loss_accepted.sql reads them), and every green
  full build keeps its shadow as the next merges' base (macros/merge_base.sql).
#}
{% macro ledger_build_started() %}
    {%- if execute and is_writing_v2() -%}
        {%- set meta = adapter.quote(var('meta_schema')) -%}
        {%- set full_build = flags.WHICH == 'build' and not (
            invocation_args_dict.get('select') or invocation_args_dict.get('exclude')
            or invocation_args_dict.get('selector') or invocation_args_dict.get('empty')
        ) -%}
        {%- set schemas = {
            'v1': var('v1_schema'), 'work': target.schema, 'shadow': var('marts_schema'), 'live': var('v2_schema')
        } -%}
        {%- call statement('ledger_build_started') -%}
            {{ meta_schema_runs(meta) }}
            update {{ meta }}.runs set result = 'interrupted', finished_at = now() where result = 'building';
            insert into {{ meta }}.runs (command, full_build, dbt_invocation_id, schemas, app_role, result)
            values (
                {{ sql_literal(flags.WHICH) }}, {{ full_build }}, {{ sql_literal(invocation_id) }},
                {{ sql_literal(tojson(schemas)) }}::jsonb, {{ sql_literal(var('app_role') or none) }}, 'building'
            );
        {%- endcall -%}
    {%- endif -%}
{% endmacro %}

{% macro ledger_build_finished(results) %}
    {%- if execute and is_writing_v2() -%}
        {%- set failed = [] -%}
        {%- for result in results if result.status not in ('success', 'pass') -%}
            {%- do failed.append(result.node.name ~ ': ' ~ result.status) -%}
        {%- endfor -%}
        {%- call statement('ledger_build_finished') -%}
            update {{ adapter.quote(var('meta_schema')) }}.runs
            set
                finished_at = now(),
                result = {{ "'build failed'" if failed else "'built'" }},
                detail = {{ sql_literal(failed | join(', ') or none) }}
            where dbt_invocation_id = {{ sql_literal(invocation_id) }};
            {%- if var('accept_rejects') and not failed %}
                {{ record_accepted_losses() }}
            {%- endif %}
            {%- if not failed %}
                {{ keep_merge_base() }}
            {%- endif %}
        {%- endcall -%}
    {%- endif -%}
{% endmacro %}

{# The rejected rows of this build, and with the files check on, the files rows whose blob was missing at the source. #}
{% macro record_accepted_losses() %}
    {%- set meta = adapter.quote(var('meta_schema')) -%}
    insert into {{ meta }}.accepted_losses (run_id, v1_table, v1_id, loss, detail)
    select runs.run_id, losses.v1_table, losses.v1_id, losses.loss, losses.detail
    from (
        select v1_table, v1_id::text as v1_id, rule as loss, detail
        from {{ adapter.quote(target.schema) }}.migration_rejects
        where action = 'rejected'
        {%- if var('files_checked') %}
            union all
            select 'files', file_id::text, 'blob_missing', object_key || ': ' || coalesce(detail, 'missing')
            from {{ meta }}.file_manifest
            where status = 'missing' and file_id is not null
        {%- endif %}
    ) as losses
    cross join {{ meta }}.runs as runs
    where runs.dbt_invocation_id = {{ sql_literal(invocation_id) }} and runs.full_build;
{% endmacro %}

{# A value as an SQL string literal (quotes doubled), or null. #}
{% macro sql_literal(value) -%}
    {{ 'null' if value is none else "'" ~ (value | string | replace("'", "''")) ~ "'" }}
{%- endmacro %}
