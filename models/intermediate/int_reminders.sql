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
        {{ verdict([
            reject_if_id_null_or_repeated('reminder_id', 'copies'),
            reject_unless_parent_migrated('task_id', 'tasks'),
            reject_if_null('remind_at'),
            reject_if_null('delivered'),
            reject_if_null('created_at')
        ]) }}
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
        reject_rule,
        reject_detail
    from checked

)

select * from final
