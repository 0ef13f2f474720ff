with

context_types as (

    select * from {{ ref('int_context_types') }}

),

final as (

    select
        id,
        value,
        label,
        is_system,
        is_active,
        sort_order,
        created_at,
        updated_at
    from context_types
    where reject_rule is null

)

select * from final
