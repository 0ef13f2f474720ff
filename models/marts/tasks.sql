with

tasks as (

    select * from {{ ref('int_tasks') }}

),

final as (

    select
        id,
        domain_id,
        project_id,
        parent_id,
        title,
        description,
        cast(priority as integer) as priority,  -- int_tasks kept 1-4 only
        status,
        due_date,
        deadline,
        recurrence,
        tags,
        context,
        is_custom_context,
        created_at,
        updated_at,
        completed_at,
        assigned_to,
        estimated_minutes,
        actual_minutes,
        energy_level,
        is_active,
        sort_order,
        template_id
    from tasks
    where reject_rule is null

)

select * from final
