{#
  How a mart's contract becomes DDL. dbt would put every constraint inside
  CREATE TABLE and then insert the rows, so each row would fire one lookup per
  foreign key and grow each key index one entry at a time. Here CREATE TABLE
  holds the columns (types, NOT NULL, defaults) and the CHECKs, and the keys
  (primary key, unique, foreign keys) are added after the insert by
  mart_post_hook, in one ALTER TABLE: PostgreSQL builds each key index in one
  sort and checks each foreign key with one join over the table. The
  constraints and their names are the same; a row that breaks one fails the
  model as before.
#}
{% macro postgres__get_table_columns_and_constraints() %}
    {%- for raw in model['constraints'] if raw.type not in ['check', 'primary_key', 'unique', 'foreign_key'] -%}
        {{ exceptions.raise_compiler_error(
            model.name ~ ": model-level constraint type " ~ raw.type ~ " is not rendered; declare it on its column"
        ) }}
    {%- endfor -%}
    {%- set columns = adapter.render_raw_columns_constraints(raw_columns=model['columns']) -%}
    {%- set checks = adapter.render_raw_model_constraints(
        raw_constraints=model['constraints'] | selectattr('type', 'equalto', 'check') | list
    ) -%}
    (
    {{ (columns + checks) | join(',\n    ') }}
    )
{% endmacro %}

{#
  The key constraints of `node`'s contract as `add constraint ...` clauses of
  ALTER TABLE on `relation`, primary key and unique first. dbt's rendering, with
  two additions:
  - a foreign_key with `to`, `to_columns` and an `expression` gets the
    expression appended as its referential action, e.g. `on delete cascade`
    (dbt itself ignores the expression once `to` is set);
  - a foreign_key with `to_columns` but no `to` references `relation` itself (a
    self-reference such as tasks.parent_id, which `to: ref(...)` cannot express
    without a cycle in dbt's graph).
#}
{% macro contract_keys(node, relation) %}
    {%- set clauses = [] -%}
    {%- for type in ['primary_key', 'unique', 'foreign_key'] -%}
        {%- for raw in node.constraints if raw.type == type -%}
            {%- if raw.type == 'foreign_key' and raw.to_columns and not raw.to -%}
                {%- do clauses.append(
                    'add constraint ' ~ raw.name ~ ' foreign key (' ~ raw.columns | join(', ') ~ ') references '
                    ~ relation ~ ' (' ~ raw.to_columns | join(', ') ~ ') ' ~ raw.expression
                ) -%}
            {%- else -%}
                {%- for sql in adapter.render_raw_model_constraints(raw_constraints=[raw]) -%}
                    {%- do clauses.append(
                        'add ' ~ sql ~ (' ' ~ raw.expression if raw.type == 'foreign_key' and raw.expression else '')
                    ) -%}
                {%- endfor -%}
            {%- endif -%}
        {%- endfor -%}
    {%- endfor -%}
    {{ return(clauses) }}
{% endmacro %}
