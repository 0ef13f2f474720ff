{#
  Everything the model's YAML contract declares is in the PostgreSQL catalog:
  the table itself in pg_class (a table that is gone is named, not an error
  that would hide the other marts' outcomes), each named constraint (primary
  key, foreign keys, unique, checks) and each column CHECK under its name
  (check_constraint_name) in pg_constraint, each index of contract_indexes()
  in pg_index, each NOT NULL in pg_attribute, each column default in
  pg_attrdef and each trigger of contract_triggers() in pg_trigger. dbt
  rebuilds a table with DROP ... CASCADE, which silently takes its children's
  foreign keys with it; this rule names what went missing. The singular test
  of the same name (tests/catalog_matches_contract.sql) runs it on every mart.
#}
{% macro catalog_matches_contract(model) %}

{%- set expected = [('table', model.identifier)] -%}
{%- if execute -%}
    {%- set node = graph.nodes.values()
        | selectattr('resource_type', 'equalto', 'model')
        | selectattr('alias', 'equalto', model.identifier)
        | first -%}
    {%- for constraint in node.constraints + column_keys(node) if constraint.name -%}
        {%- do expected.append(('constraint', constraint.name)) -%}
    {%- endfor -%}
    {%- for index in contract_indexes(node) -%}
        {%- do expected.append(('index', index.name)) -%}
    {%- endfor -%}
    {%- for column in node.columns.values() -%}
        {%- for constraint in column.constraints -%}
            {%- if constraint.type == 'custom' and constraint.expression.startswith('default ') -%}
                {%- do expected.append(('default', column.name)) -%}
            {%- elif constraint.type == 'not_null' -%}
                {%- do expected.append(('not_null', column.name)) -%}
            {%- elif constraint.type == 'check' -%}
                {%- do expected.append(('constraint', check_constraint_name(node, column, constraint))) -%}
            {%- endif -%}
        {%- endfor -%}
    {%- endfor -%}
    {%- for trigger in contract_triggers(node) -%}
        {%- do expected.append(('trigger', trigger.name)) -%}
    {%- endfor -%}
{%- endif -%}
{#- null when the table is gone: every object it declares is then named as missing, the table first -#}
{%- set table = "to_regclass('" ~ adapter.quote(model.schema) ~ "." ~ adapter.quote(model.identifier) ~ "')" -%}

with

expected (kind, object_name) as (

    values
    {%- for kind, object_name in expected %}
        ('{{ kind }}', '{{ object_name }}'){{ "," if not loop.last }}
    {%- endfor %}

),

catalog as (

    select
        'table' as kind,
        relname::text as object_name
    from pg_class
    where oid = {{ table }}

    union all

    select
        'constraint' as kind,
        conname::text as object_name
    from pg_constraint
    where conrelid = {{ table }}

    union all

    select
        'index' as kind,
        index_class.relname::text as object_name
    from pg_index
    inner join pg_class as index_class on pg_index.indexrelid = index_class.oid
    where pg_index.indrelid = {{ table }}

    union all

    select
        'default' as kind,
        pg_attribute.attname::text as object_name
    from pg_attrdef
    inner join pg_attribute
        on
            pg_attrdef.adrelid = pg_attribute.attrelid
            and pg_attrdef.adnum = pg_attribute.attnum
    where pg_attrdef.adrelid = {{ table }}

    union all

    select
        'not_null' as kind,
        attname::text as object_name
    from pg_attribute
    where attrelid = {{ table }} and attnotnull and not attisdropped

    union all

    select
        'trigger' as kind,
        tgname::text as object_name
    from pg_trigger
    where tgrelid = {{ table }} and not tgisinternal and tgenabled <> 'D'

),

final as (

    select
        expected.*,
        'not in the catalog: ' || expected.kind || ' ' || expected.object_name as problem
    from expected
    left join catalog
        on
            expected.kind = catalog.kind
            and expected.object_name = catalog.object_name
    where catalog.object_name is null

)

select * from final

{% endmacro %}
