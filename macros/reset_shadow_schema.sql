{#
  on-run-start of `dbt build` / `dbt run`: v2 is always built into an empty
  schema. dbt's rebuild of one table drops its children's FKs (DROP ... CASCADE)
  without a word, named constraints collide on a second run, and constraints
  built beside old tables get `__dbt_tmp` names; an empty schema avoids all three.
  adapter.drop_schema also clears dbt's relation cache, so dbt does not go on to
  rename tables it believes are still there.
  The schema also gets the trigger function that keeps updated_at current.
#}
{% macro reset_shadow_schema() %}
    {%- if execute and is_writing_v2() -%}
        {%- set shadow = api.Relation.create(database=target.database, schema=var('shadow_schema')) -%}
        {%- do adapter.drop_schema(shadow) -%}
        {%- do adapter.create_schema(shadow) -%}
        {%- call statement('set_updated_at_function') -%}
            create function {{ adapter.quote(var('shadow_schema')) }}.set_updated_at() returns trigger
            language plpgsql as $$
            begin
                new.updated_at := now();
                return new;
            end;
            $$;
            comment on function {{ adapter.quote(var('shadow_schema')) }}.set_updated_at() is
                'Keeps updated_at current on every UPDATE (trigger <table>_set_updated_at).';
        {%- endcall -%}
    {%- endif -%}
{% endmacro %}
