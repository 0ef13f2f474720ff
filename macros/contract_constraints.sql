{#
  dbt's own rendering of contract constraints, with one addition: a model-level
  foreign_key that has `to`, `to_columns` and an `expression` gets the expression
  appended as its referential action, e.g. `expression: on delete cascade`.
  dbt itself ignores the expression once `to` is set.
  A foreign_key with `to_columns` but no `to` references the model's own table
  (a self-reference such as tasks.parent_id, which `to: ref(...)` cannot express
  without a cycle in dbt's graph): it names the relation being created, and the
  constraint follows the table through dbt's rename.
#}
{% macro postgres__get_table_columns_and_constraints() %}
    {%- set columns = adapter.render_raw_columns_constraints(raw_columns=model['columns']) -%}
    {%- set constraints = [] -%}
    {%- for raw in model['constraints'] -%}
        {%- set rendered = adapter.render_raw_model_constraints(raw_constraints=[raw]) -%}
        {%- for sql in rendered -%}
            {%- if raw.type == 'foreign_key' and raw.to_columns and not raw.to -%}
                {%- do constraints.append(
                    'constraint ' ~ raw.name ~ ' foreign key (' ~ raw.columns | join(', ') ~ ') references '
                    ~ make_intermediate_relation(this) ~ ' (' ~ raw.to_columns | join(', ') ~ ') ' ~ raw.expression
                ) -%}
            {%- elif raw.type == 'foreign_key' and raw.to and raw.expression -%}
                {%- do constraints.append(sql ~ ' ' ~ raw.expression) -%}
            {%- else -%}
                {%- do constraints.append(sql) -%}
            {%- endif -%}
        {%- endfor -%}
    {%- endfor -%}
    (
    {{ (columns + constraints) | join(',\n    ') }}
    )
{% endmacro %}
