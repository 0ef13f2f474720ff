{{ depends_on_entity_tables() }}

with

reminders as (

    select * from {{ ref('int_reminders') }}

),

final as (

    select
        id,
        entity_type,
        entity_id,
        remind_at,
        recurrence,
        snoozed_until,
        delivered,
        created_at,
        updated_at,
        is_active,
        sort_order
    from reminders
    where reject_rule is null

)

select * from final
