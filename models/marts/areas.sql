with

areas as (

    select * from {{ ref('int_areas') }}

),

final as (

    select
        id,
        domain_id,
        name,
        description,
        created_at,
        updated_at,
        is_active,
        sort_order,
        icon,
        color
    from areas
    where reject_rule is null

)

select * from final
