with

projects as (

    select * from {{ ref('projects') }}

),

statuses as (

    -- the seed read backwards; should two v1 statuses ever share a v2 status, the first is v1's
    select
        v2_status,
        min(v1_status) as v1_status
    from {{ ref('project_status_map') }}
    group by v2_status

),

mapped as (

    select
        projects.*,
        statuses.v1_status,
        case
            when statuses.v1_status is null then 'status ' || projects.status || ' has no v1 status'
        end as not_representable
    from projects
    left join statuses on projects.status = statuses.v2_status

),

final as (

    select
        id,
        domain_id,
        area_id,
        name,
        description,
        v1_status as status,
        target_date as due_date,
        created_at,
        updated_at,
        not_representable,
        0 as load_order
    from mapped

)

select * from final
