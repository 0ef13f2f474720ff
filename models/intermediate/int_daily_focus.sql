with

daily_focus as (

    select
        *,
        count(*) over (partition by daily_focus_id) as copies
    from {{ ref('stg_v1__daily_focus') }}

),

tasks as (

    {{ reference_verdicts('int_tasks') }}

),

task_domains as (

    select
        id,
        domain_id
    from {{ ref('int_tasks') }}
    where reject_rule is null

),

{#- v2 keeps one active focus entry per task and day (daily_focus_focus_date_task_id_key): a repeat in v1 is
    migrated inactive (adjusted, nothing lost), the entry with an id of its own first, then by slot, creation, id -#}
{%- set task_repeat -%}
    row_number() over (
        partition by focus_date, {{ kept_reference('task_id', 'tasks') }}
        order by daily_focus_id is null or copies > 1, slot, created_at, daily_focus_id
    )
{%- endset %}

checked as (

    select
        daily_focus.*,
        {{ kept_reference('task_id', 'tasks') }} as kept_task_id,
        task_domains.domain_id,
        {{ verdict([
            reject_if_id_null_or_repeated('daily_focus_id', 'copies'),
            reject_if_null('focus_date'),
            reject_if('slot not between -2147483648 and 2147483647', 'out_of_range',
                "'slot ' || slot || ' does not fit v2''s integer'"),
            reject_if_null('completed'),
            reject_if_null('created_at')
        ]) }},
        {{ kept_reference('task_id', 'tasks') }} is not null and {{ task_repeat }} > 1 as is_repeat,
        {{ adjustments([('task_id', 'tasks')]) }} as task_adjustment
    from daily_focus
    left join tasks on daily_focus.task_id = tasks.id
    left join task_domains on daily_focus.task_id = task_domains.id

),

final as (

    select
        daily_focus_id as id,
        focus_date,
        kept_task_id as task_id,
        slot,
        completed,
        note,
        created_at,
        domain_id,
        created_at as updated_at,
        not coalesce(is_repeat, false) as is_active,
        {{ sort_order(
            partition_by='focus_date',
            order_by='reject_rule is not null, slot, created_at, daily_focus_id'
        ) }} as sort_order,
        reject_rule,
        reject_detail,
        case
            when is_repeat
                then
                    'repeat of task ' || task_id || ' on the focus list of ' || focus_date
                    || ' in v1: migrated inactive (is_active false)'
            else task_adjustment
        end as adjustment
    from checked

)

select * from final
