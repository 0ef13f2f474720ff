with

domains as (

    select * from {{ ref('domains') }}

),

final as (

    select
        id,
        name,
        color,
        created_at,
        null::text as not_representable,
        0 as load_order
    from domains

)

select * from final
