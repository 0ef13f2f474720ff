{#
  Drift: columns a v1 table has in the restored dump that the sources YAML (the
  plan's input contract) does not declare. The plan maps none of them, so their
  values do not reach v2; they stay in the v1 dump and in migration_rejects'
  v1_row. The columns the dump has are read from the catalog (source catalog.columns,
  information_schema); the build lists them (macros/log_unmapped_v1_columns.sql).
#}
{%- set declared = [] -%}
{%- if execute -%}
    {%- for source in graph.sources.values() if source.source_name == 'v1' -%}
        {%- for column in source.columns -%}
            {%- do declared.append("('" ~ source.name ~ "', '" ~ column ~ "')") -%}
        {%- endfor -%}
    {%- endfor -%}
{%- endif -%}

with

v1_columns as (

    select
        table_name::text as v1_table,
        column_name::text,
        data_type::text,
        ordinal_position::integer
    from {{ source('catalog', 'columns') }}
    where table_schema = '{{ var("v1_schema") }}'

),

declared as (

    select
        v1_table,
        column_name
    from (
        values {{ declared | sort | join(', ') if declared else '(null, null)' }}
    ) as declared_columns (v1_table, column_name)

),

declared_tables as (

    select distinct v1_table from declared

),

final as (

    select v1_columns.*
    from v1_columns
    inner join declared_tables on v1_columns.v1_table = declared_tables.v1_table
    left join declared
        on v1_columns.v1_table = declared.v1_table and v1_columns.column_name = declared.column_name
    where declared.column_name is null

)

select * from final
