{#
  Every v1 row that did not reach v2 unchanged: `rejected` rows broke a v2 rule
  and are not in v2; `adjusted` rows are in v2 with a dangling reference set to
  NULL (orphan_fk_nulled), or inactive as the repeat of a unique active pair
  (duplicate_deactivated: a task on one day's daily_focus twice). The verdicts come from the int_ models; the whole v1 row (jsonb, drifted
  columns included) from the staging view's v1_row, read only for these rows,
  so no int_ model carries it. All copies of a duplicated (or NULL) id share one
  verdict, so each v1 row appears once; NULL ids are matched through the nil UUID.
#}
{%- set nil_uuid = "'00000000-0000-0000-0000-000000000000'::uuid" -%}
{#- v1 table: (its int_ model, its id in staging) -#}
{%- set checked_tables = {
    'domains': ('int_domains', 'domain_id'),
    'areas': ('int_areas', 'area_id'),
    'projects': ('int_projects', 'project_id'),
    'context_types': ('int_context_types', 'context_type_id'),
    'tasks': ('int_tasks', 'task_id'),
    'notes': ('int_notes', 'note_id'),
    'capture': ('int_capture', 'capture_id'),
    'links': ('int_bookmarks', 'link_id'),
    'files': ('int_files', 'file_id'),
    'daily_focus': ('int_daily_focus', 'daily_focus_id'),
    'reminders': ('int_reminders', 'reminder_id'),
} -%}

with

{% for v1_table, (int_model, id_column) in checked_tables.items() %}
    {{ v1_table }}_v1_rows as (

        select
            {{ id_column }} as id,
            v1_row
        from {{ ref('stg_v1__' ~ v1_table) }}

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
            coalesce(
                checked.reject_rule,
                case when checked.adjustment like 'repeat of %' then 'duplicate_deactivated' else 'orphan_fk_nulled' end
            ) as rule,
            coalesce(checked.reject_detail, checked.adjustment) as detail,
            v1_rows.v1_row
        from {{ v1_table }}_checked as checked
        inner join {{ v1_table }}_v1_rows as v1_rows
            on coalesce(checked.id, {{ nil_uuid }}) = coalesce(v1_rows.id, {{ nil_uuid }})

    ),

{% endfor %}
final as (

    {% for v1_table in checked_tables %}
        select * from {{ v1_table }}_rejects
        {% if not loop.last %}union all{% endif %}
    {% endfor %}

)

select * from final
