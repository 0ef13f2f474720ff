{#
  v2 reminders are polymorphic (entity_type, entity_id). A v1 reminder belongs to
  a task, which v1 deleted it with (ON DELETE CASCADE): a reminder whose task is
  not migrated is rejected.
#}
with

reminders as (

    select
        *,
        count(*) over (partition by reminder_id) as copies
    from {{ ref('stg_v1__reminders') }}

),

tasks as (

    {{ reference_verdicts('int_tasks') }}

),

checked as (

    select
        reminders.*,
        coalesce(
            {{ id_check('reminder_id', 'copies') }},
            {{ required_reference_check('task_id', 'tasks') }},
            {{ required_check('remind_at') }},
            {{ required_check('delivered') }},
            {{ required_check('created_at') }}
        ) as verdict
    from reminders
    left join tasks on reminders.task_id = tasks.id

),

final as (

    select
        reminder_id as id,
        task_id as entity_id,
        remind_at,
        delivered,
        created_at,
        created_at as updated_at,
        'task' as entity_type,
        true as is_active,
        0 as sort_order,
        null::text as recurrence,
        null::timestamptz as snoozed_until,
        null::text as adjustment,
        verdict[1] as reject_rule,
        verdict[2] as reject_detail
    from checked

)

select * from final
