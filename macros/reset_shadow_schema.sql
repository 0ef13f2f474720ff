{#
  on-run-start of an invocation that writes v2 (is_writing_v2: it materializes
  a mart): v2 is always built into an empty schema, var marts_schema, which is
  never the live one. dbt's rebuild of one table drops its children's FKs
  (DROP ... CASCADE) without a word, named constraints collide on a second run,
  and constraints built beside old tables get `__dbt_tmp` names; an empty
  schema avoids all three.
  adapter.drop_schema also clears dbt's relation cache, so dbt does not go on to
  rename tables it believes are still there.
  The schema also gets the trigger functions of macros/app_triggers.sql.
#}
{% macro reset_shadow_schema() %}
    {%- if execute and is_writing_v2() -%}
        {%- if var('marts_schema') == var('v2_schema') -%}
            {{ exceptions.raise_compiler_error(
                "refusing to build the marts into the live schema " ~ var('v2_schema')
                ~ " (var marts_schema): the build empties it first; build into the shadow and publish"
            ) }}
        {%- endif -%}
        {%- set shadow = api.Relation.create(database=target.database, schema=var('marts_schema')) -%}
        {%- do adapter.drop_schema(shadow) -%}
        {%- do adapter.create_schema(shadow) -%}
        {%- call statement('app_trigger_functions') -%}
            {{ app_trigger_functions(var('marts_schema')) }}
        {%- endcall -%}
    {%- endif -%}
{% endmacro %}
