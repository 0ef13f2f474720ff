with

reminders as (

    select * from {{ ref('reminders') }}

),

mapped as (

    select
        *,
        case when entity_type = 'task' then entity_id end as task_id,
        case
            when entity_type <> 'task' then 'a reminder of a ' || entity_type || ': v1 reminds of tasks only'
        end as not_representable
    from reminders

),

final as (

    select
        id,
        task_id,
        remind_at,
        delivered,
        created_at,
        not_representable,
        0 as load_order
    from mapped

)

select * from final
