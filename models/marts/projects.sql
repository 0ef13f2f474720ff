with

projects as (

    select * from {{ ref('int_projects') }}

),

final as (

    select
        id,
        domain_id,
        area_id,
        name,
        description,
        status,
        target_date,
        created_at,
        updated_at,
        start_date,
        priority,
        is_active,
        sort_order,
        color,
        release_id
    from projects
    where reject_rule is null

)

select * from final
