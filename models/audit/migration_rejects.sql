{#
  Every v1 row that did not reach v2 unchanged: `rejected` rows broke a v2 rule
  and are not in v2; `adjusted` rows are in v2 with a dangling reference set to
  NULL. Each keeps its whole v1 row as jsonb.
#}
{%- set checked_tables = {
    'domains': 'int_domains',
    'areas': 'int_areas',
} -%}

with

{% for v1_table, int_model in checked_tables.items() %}
    {{ v1_table }}_source as (

        select * from {{ source('v1', v1_table) }}

    ),

    {{ v1_table }}_checked as (

        select * from {{ ref(int_model) }}
        where reject_rule is not null or adjustment is not null

    ),

    {{ v1_table }}_rejects as (

        select
            '{{ v1_table }}'::text as v1_table,
            checked.id as v1_id,
            case when checked.reject_rule is null then 'adjusted' else 'rejected' end as action,
            coalesce(checked.reject_rule, 'orphan_fk_nulled') as rule,
            coalesce(checked.reject_detail, checked.adjustment) as detail,
            to_jsonb(source) as v1_row
        from {{ v1_table }}_checked as checked
        inner join {{ v1_table }}_source as source on checked.id = source.id

    ),

{% endfor %}
final as (

    {% for v1_table in checked_tables %}
        select * from {{ v1_table }}_rejects
        {% if not loop.last %}union all{% endif %}
    {% endfor %}

)

select * from final
