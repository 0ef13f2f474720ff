{#
  Schemas are used exactly as named, never prefixed with the target schema.
  The marts (`+schema: v2`) are written by `dbt build` / `dbt run` into the empty
  shadow schema (var shadow_schema) and read by every other command (`dbt test`,
  `dbt docs`, `dbt show`) from the live schema (var v2_schema), so `dbt test`
  after publishing validates what the app sees.
#}
{% macro generate_schema_name(custom_schema_name, node) -%}
    {%- if custom_schema_name is none -%}
        {{ target.schema }}
    {%- elif custom_schema_name | trim == 'v2' -%}
        {{ v2_schema_for_this_command() }}
    {%- else -%}
        {{ custom_schema_name | trim }}
    {%- endif -%}
{%- endmacro %}

{% macro is_writing_v2() -%}
    {{ return(flags.WHICH in ('build', 'run')) }}
{%- endmacro %}

{#
  Reading commands may point v2_schema at the shadow on purpose
  (`dbt test --vars '{v2_schema: v2_shadow}'` audits a build before publishing);
  a writing command never may: its on-run-start empties the shadow schema.
#}
{% macro v2_schema_for_this_command() -%}
    {%- if is_writing_v2() -%}
        {%- if var('shadow_schema') == var('v2_schema') -%}
            {{ exceptions.raise_compiler_error("vars shadow_schema and v2_schema must differ: the build would empty live v2") }}
        {%- endif -%}
        {{ var('shadow_schema') }}
    {%- else -%}
        {{ var('v2_schema') }}
    {%- endif -%}
{%- endmacro %}
