{#
  Every v1 row that did not reach v2 unchanged: `rejected` rows broke a v2 rule
  and are not in v2; `adjusted` rows are in v2 with a dangling reference set to
  NULL. Each keeps its whole v1 row as jsonb, drifted columns included. All
  copies of a duplicated (or NULL) id share one verdict, so each v1 row appears
  once; NULL ids are matched through the nil UUID.
#}
{%- set nil_uuid = "'00000000-0000-0000-0000-000000000000'::uuid" -%}
{%- set checked_tables = {
    'domains': 'int_domains',
    'areas': 'int_areas',
    'projects': 'int_projects',
    'context_types': 'int_context_types',
    'tasks': 'int_tasks',
    'notes': 'int_notes',
    'capture': 'int_capture',
    'links': 'int_bookmarks',
    'files': 'int_files',
    'daily_focus': 'int_daily_focus',
    'reminders': 'int_reminders',
} -%}

with

{% for v1_table, int_model in checked_tables.items() %}
    {{ v1_table }}_source as (

        select * from {{ source('v1', v1_table) }}

    ),

    {{ v1_table }}_checked as (

        select distinct
            id,
            reject_rule,
            reject_detail,
            adjustment
        from {{ ref(int_model) }}
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
        inner join {{ v1_table }}_source as source
            on coalesce(checked.id, {{ nil_uuid }}) = coalesce(source.id::uuid, {{ nil_uuid }})

    ),

{% endfor %}
final as (

    {% for v1_table in checked_tables %}
        select * from {{ v1_table }}_rejects
        {% if not loop.last %}union all{% endif %}
    {% endfor %}

)

select * from final
