{#
  Schemas are used exactly as named, never prefixed with the target schema.
  The marts (`+schema: v2`) are parsed into the schema var marts_schema names,
  whatever the command: the shadow, v2_shadow, by default, where `dbt build`
  writes v2 before publishing. The schema depends on the vars alone, never on
  the command, so a parsed manifest serves every command run with the same
  vars (partial parsing). An invocation that only reads the marts (`dbt
  test`, `dbt docs generate`) finds them where v2 is at run time: the shadow
  holding a build, else live v2 (macros/where_v2_is.sql); naming the schema,
  `--vars '{marts_schema: public}'`, overrides that.

  An invocation writes v2 when it materializes a mart (is_writing_v2): only
  then does on-run-start empty marts_schema first (reset_shadow_schema) and the
  ledger record a run (migration_ledger.sql). A writing invocation refuses when
  marts_schema is the live schema.
#}
{% macro generate_schema_name(custom_schema_name, node) -%}
    {%- if custom_schema_name is none -%}
        {{ target.schema }}
    {%- elif custom_schema_name | trim == 'v2' -%}
        {{ var('marts_schema') }}
    {%- else -%}
        {{ custom_schema_name | trim }}
    {%- endif -%}
{%- endmacro %}

{#
  Whether this invocation materializes at least one mart: a `dbt build` or
  `dbt run` with one among dbt's selected_resources (a `dbt test` selects tests,
  `dbt seed` seeds, and `dbt run --select int_files` no mart). `dbt docs
  generate` and `dbt compile` run the on-run-start hooks too and select the
  marts, but materialize nothing: the shadow under review must survive them.
#}
{% macro is_writing_v2() -%}
    {%- if flags.WHICH not in ('build', 'run') -%}
        {{ return(false) }}
    {%- endif -%}
    {%- for unique_id in selected_resources if unique_id in graph.nodes -%}
        {%- set node = graph.nodes[unique_id] -%}
        {%- if node.resource_type == 'model' and node.config.schema == 'v2' -%}
            {{ return(true) }}
        {%- endif -%}
    {%- endfor -%}
    {{ return(false) }}
{%- endmacro %}
