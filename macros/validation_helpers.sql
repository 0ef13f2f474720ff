{#
  Helpers of the validation rules in macros/checks/ (the rules of mart_checks).
#}

{# The v1 ids of `v1_table` that migration_rejects lists with `action`. #}
{% macro logged_ids(v1_table, action) -%}
    select v1_id from {{ ref('migration_rejects') }}
    where v1_table = '{{ v1_table }}' and action = '{{ action }}'
{%- endmacro %}

{#
  The ids (as text) of the rows of the tested relation `model` that are the app's, not v1's:
  `scripts/migrate --carry-forward` merged them into this schema (its oid, which publishing keeps) with
  `action` (inserted, updated or deleted; a list for several). The v1 checks leave them out.
#}
{% macro carried_ids(model, action) -%}
    {%- set actions = [action] if action is string else action -%}
    select row_id from {{ adapter.quote(var('meta_schema')) }}.carried
    where schema_oid = to_regnamespace({{ sql_literal(model.schema) }})::oid
        and table_name = {{ sql_literal(model.identifier) }}
        and action in ({% for one in actions %}{{ sql_literal(one) }}{{ ", " if not loop.last }}{% endfor %})
{%- endmacro %}

{#
  The ids of `model` that are not from v1 but added by the mapping on purpose:
  those found in `added_from` (e.g. seed default_context_types) and not in v1.
  No rows without `added_from`.
#}
{% macro added_ids(model, v1_table, added_from) -%}
    select v2.id from {{ model }} as v2
    {%- if added_from %}
        inner join {{ added_from }} as added on v2.id = added.id
        where not exists (
            select from {{ source('v1', v1_table) }} as v1
            where {{ as_v2_type('v1.id', contract_data_types(model).get('id')) }} = v2.id
        )
    {%- else %}
        where false
    {%- endif %}
{%- endmacro %}

{#
  The foreign keys of the tested model's contract, each as
  {name, columns, to (relation beside the model), to_columns}.
  Read from the contract so that no FK is declared twice and none is forgotten.
#}
{% macro contract_foreign_keys(model) -%}
    {%- set fks = [] -%}
    {%- if execute -%}
        {%- set nodes = graph.nodes.values()
            | selectattr('resource_type', 'equalto', 'model')
            | selectattr('alias', 'equalto', model.identifier) | list -%}
        {%- for constraint in nodes[0].constraints if constraint.type == 'foreign_key' -%}
            {#- `to` is ref('x') before rendering, "db"."schema"."x" after: the table name is its last quoted
                word; a self-reference has no `to` -#}
            {%- set parent = modules.re.findall("['\"]([^'\"]+)['\"]", constraint.to)[-1]
                if constraint.to else model.identifier -%}
            {%- do fks.append({
                'name': constraint.name,
                'columns': constraint.columns,
                'to': api.Relation.create(database=model.database, schema=model.schema, identifier=parent),
                'to_columns': constraint.to_columns,
            }) -%}
        {%- endfor -%}
    {%- endif -%}
    {{ return(fks) }}
{%- endmacro %}

{#
  The data types of the tested model's contract, column name -> data_type, so
  every check compares v1 through v2's type: a v1 column whose type drifted
  (varchar for text, varchar(50)[] for text[], smallint for integer, timestamp
  for timestamptz) is cast to the contract's type, never compared as it is.
#}
{% macro contract_data_types(model) -%}
    {%- set types = {} -%}
    {%- if execute -%}
        {%- set nodes = graph.nodes.values()
            | selectattr('resource_type', 'equalto', 'model')
            | selectattr('alias', 'equalto', model.identifier) | list -%}
        {%- for column in nodes[0].columns.values() -%}
            {%- do types.update({column.name: column.data_type}) -%}
        {%- endfor -%}
    {%- endif -%}
    {{ return(types) }}
{%- endmacro %}

{#
  `column` of a v1 relation as v2's `data_type` (the contract's); as it is when
  the type is not known (at parse time).
#}
{% macro as_v2_type(column, data_type) -%}
    {%- if data_type -%}
        cast({{ column }} as {{ data_type }})
    {%- else -%}
        {{ column }}
    {%- endif -%}
{%- endmacro %}

{#
  One pass over v1 (projected through the mapping: v2 name -> v1 name for
  `renamed` columns, the same name otherwise) joined to v2 on id. Returns the
  ids whose `columns` differ, with the names of the differing columns (and
  them as text in `problem`, like every validation test's failing rows). With
  `hashed`, md5 of each value is compared instead of the value. A foreign-key
  column that v2 holds as NULL is not a difference on a row migration_rejects
  lists as adjusted (its dangling reference was set to NULL on purpose).
  Rows on one side only are the business of reconcile_ids. v1's values are
  cast to v2's types after the join, so only rows that are in v2 are cast: a
  rejected row whose value does not fit v2's type cannot fail the check.
#}
{% macro compare_with_v1(model, v1_table, columns, renamed, hashed) -%}
    {%- set types = contract_data_types(model) -%}
    {%- set nulled = [] -%}
    {%- for fk in contract_foreign_keys(model) -%}
        {%- do nulled.extend(fk.columns) -%}
    {%- endfor -%}

    with

    v1 as (

        select
            {{ as_v2_type('id', types.get('id')) }} as id,
            {%- for column in columns %}
                {{ adapter.quote(renamed.get(column, column)) }} as {{ adapter.quote(column) }}
                {%- if not loop.last %},{% endif %}
            {%- endfor %}
        from {{ source('v1', v1_table) }}

    ),

    v2 as (

        select
            id,
            {%- for column in columns %}
                {{ adapter.quote(column) }}{% if not loop.last %},{% endif %}
            {%- endfor %}
        from {{ model }}

    ),

    adjusted as (

        {{ logged_ids(v1_table, 'adjusted') }}

    ),

    compared as (

        select
            v2.id,
            array_remove(array[
                {%- for column in columns %}
                    {%- set v1_value = as_v2_type('v1.' ~ adapter.quote(column), types.get(column)) -%}
                    {%- set v2_value = 'v2.' ~ adapter.quote(column) %}
                    case when
                        {%- if hashed %}
                            md5({{ v1_value }}::text) is distinct from md5({{ v2_value }}::text)
                        {%- else %}
                            {{ v1_value }} is distinct from {{ v2_value }}
                        {%- endif %}
                        {%- if column in nulled %}
                            and not ({{ v2_value }} is null and adjusted.v1_id is not null)
                        {%- endif %}
                        then '{{ column }}' end{% if not loop.last %},{% endif %}
                {%- endfor %}
            ], null) as differing_columns
        from v1
        inner join v2 on v1.id = v2.id
        left join adjusted on v1.id = adjusted.v1_id
        where v2.id::text not in ({{ carried_ids(model, 'updated') }})

    )

    select
        *,
        'differs from v1: ' || array_to_string(differing_columns, ', ') as problem
    from compared
    where cardinality(differing_columns) > 0
{%- endmacro %}
