with recursive

tasks as (

    select * from {{ ref('tasks') }}

),

statuses as (

    -- the seed read backwards; should two v1 statuses ever share a v2 status, the first is v1's
    select
        v2_status,
        min(v1_status) as v1_status
    from {{ ref('task_status_map') }}
    group by v2_status

),

-- how deep each task sits below its root (v2 refuses parent cycles), so that parents are written first
depths as (

    select
        id,
        0 as depth
    from tasks
    where parent_id is null

    union all

    select
        tasks.id,
        depths.depth + 1 as depth
    from tasks
    inner join depths on tasks.parent_id = depths.id

),

mapped as (

    select
        tasks.*,
        statuses.v1_status,
        depths.depth,
        case
            when statuses.v1_status is null then 'status ' || tasks.status || ' has no v1 status'
        end as not_representable
    from tasks
    left join statuses on tasks.status = statuses.v2_status
    left join depths on tasks.id = depths.id

),

final as (

    select
        id,
        domain_id,
        project_id,
        parent_id,
        title,
        description,
        priority,
        v1_status as status,
        due_date,
        deadline,
        recurrence,
        tags,
        context,
        is_custom_context,
        created_at,
        updated_at,
        completed_at,
        not_representable,
        depth as load_order
    from mapped

)

select * from final
