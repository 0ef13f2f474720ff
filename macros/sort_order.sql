{#
  The plan's generated sort_order: 10, 20, 30 ... within each parent scope,
  ordered by created_at and then id so that ties are deterministic.
#}
{% macro sort_order(partition_by=none, order_by='created_at, id') -%}
    (10 * row_number() over (
        {%- if partition_by %} partition by {{ partition_by }}{% endif %} order by {{ order_by }}
    ))::integer
{%- endmacro %}
