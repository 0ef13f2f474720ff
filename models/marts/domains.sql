with

domains as (

    select * from {{ ref('int_domains') }}

),

final as (

    select
        id,
        name,
        color,
        created_at,
        updated_at,
        is_active,
        sort_order,
        description,
        icon
    from domains
    where reject_rule is null

)

select * from final
