{#
  The whole body of a v2 table that has no v1 data (plan section 4): no rows,
  and exactly the columns and types of the model's YAML contract, in its order.
  The YAML is the single source of the table's DDL; dbt creates the table from
  the contract, and mart_post_hook adds its indexes and trigger.
#}
{% macro empty_from_contract() -%}
    select
        {%- for column in model.columns.values() %}
            cast(null as {{ column.data_type }}) as {{ column.name }}{{ "," if not loop.last }}
        {%- endfor %}
    where false
{%- endmacro %}
