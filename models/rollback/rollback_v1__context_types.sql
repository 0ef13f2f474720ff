with

context_types as (

    select * from {{ ref('context_types') }}

),

final as (

    select
        id,
        value,
        label,
        is_system,
        null::text as not_representable,
        0 as load_order
    from context_types

)

select * from final
