{#
  How a mart's contract becomes DDL: rows first, then the DDL, as a bulk load
  does. dbt would CREATE TABLE with every constraint and then INSERT ... SELECT;
  PostgreSQL runs no part of an INSERT in parallel, and each row would fire one
  lookup per foreign key and grow each key index one entry at a time. Here,
  once dbt has checked the model's column names and types against the contract:
  - CREATE TABLE AS writes the rows in the contract's column order; its SELECT
    may use parallel workers (search_index's tsvectors, on every core);
  - one ALTER TABLE adds the NOT NULLs, the defaults and the CHECKs of
    contract_columns_ddl() in one scan;
  - mart_post_hook adds the keys of contract_keys() in one more ALTER TABLE:
    one sort per key index, one join per foreign key.
  The constraints and their names are the contract's; a row that breaks one
  fails the model as before. A model without an enforced contract (int_,
  audit) is a plain CREATE TABLE AS, as in dbt; `sql_header` and `unlogged`
  are honoured as dbt-postgres does.
#}
{% macro postgres__create_table_as(temporary, relation, sql) %}
    {%- set enforced = config.get('contract').enforced -%}
    {%- if enforced %}
        {{- get_assert_columns_equivalent(sql) }}
    {%- endif %}
    {{ config.get('sql_header') or '' }}
    create {{ 'temporary ' if temporary else 'unlogged ' if config.get('unlogged') }}table {{ relation }} as (
        {{ get_select_subquery(sql) if enforced else sql }}
    );
    {%- if enforced and not temporary %}
    alter table {{ relation }}
        {{ contract_columns_ddl(model) | join(',\n        ') }};
    {%- endif %}
{% endmacro %}

{#
  The NOT NULLs, defaults (a `custom` constraint `default ...`) and CHECKs of
  `node`'s contract as clauses of ALTER TABLE. A column CHECK without a name
  gets the one PostgreSQL gives it on the final table (check_constraint_name),
  not one derived from dbt's intermediate `__dbt_tmp` table. A constraint type
  this rendering does not place stops the build rather than being dropped.
#}
{% macro contract_columns_ddl(node) %}
    {%- set clauses = [] -%}
    {%- for column in node.columns.values() -%}
        {%- for constraint in column.constraints -%}
            {%- if constraint.type == 'not_null' -%}
                {%- do clauses.append('alter column ' ~ column.name ~ ' set not null') -%}
            {%- elif constraint.type == 'custom' and constraint.expression.startswith('default ') -%}
                {%- do clauses.append('alter column ' ~ column.name ~ ' set ' ~ constraint.expression) -%}
            {%- elif constraint.type == 'check' -%}
                {%- do clauses.append(
                    'add constraint ' ~ check_constraint_name(node, column, constraint)
                    ~ ' check (' ~ constraint.expression ~ ')'
                ) -%}
            {%- elif constraint.type == 'primary_key' -%}
                {#- added with the keys, by contract_keys() -#}
            {%- else -%}
                {{ exceptions.raise_compiler_error(
                    node.name ~ "." ~ column.name ~ ": column constraint " ~ constraint.type
                    ~ " is not rendered; declare other keys than the primary key on the model,"
                    ~ " defaults as `custom: default ...`"
                ) }}
            {%- endif -%}
        {%- endfor -%}
    {%- endfor -%}
    {%- for constraint in node.constraints if constraint.type not in ['check', 'primary_key', 'unique', 'foreign_key'] -%}
        {{ exceptions.raise_compiler_error(
            node.name ~ ": model-level constraint type " ~ constraint.type ~ " is not rendered; declare it on its column"
        ) }}
    {%- endfor -%}
    {%- for sql in adapter.render_raw_model_constraints(
        raw_constraints=node.constraints | selectattr('type', 'equalto', 'check') | list
    ) -%}
        {%- do clauses.append('add ' ~ sql) -%}
    {%- endfor -%}
    {{ return(clauses) }}
{% endmacro %}

{# The name of a column CHECK: its own, or <table>_<column>_check as PostgreSQL names it. #}
{% macro check_constraint_name(node, column, constraint) %}
    {{- return(constraint.name or node.alias ~ '_' ~ column.name ~ '_check') -}}
{% endmacro %}

{#
  The key constraints of `node`'s contract (the model's and column_keys()) as
  `add constraint ...` clauses of ALTER TABLE on `relation`, primary key and
  unique first. dbt's rendering, with two additions:
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
        {%- for raw in node.constraints + column_keys(node) if raw.type == type -%}
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

{#
  The primary key declared on a column of `node` (each mart's id), as the
  model-level constraint it is: named as declared, else <table>_pkey as
  PostgreSQL names it. dbt's own rendering of a column constraint drops its name.
#}
{% macro column_keys(node) %}
    {%- set keys = [] -%}
    {%- for column in node.columns.values() -%}
        {%- for constraint in column.constraints if constraint.type == 'primary_key' -%}
            {%- do keys.append({
                'type': 'primary_key', 'name': constraint.name or node.alias ~ '_pkey', 'columns': [column.name]
            }) -%}
        {%- endfor -%}
    {%- endfor -%}
    {{ return(keys) }}
{% endmacro %}
