with

areas as (

    select * from {{ ref('areas') }}

),

final as (

    select
        id,
        domain_id,
        name,
        description,
        created_at,
        null::text as not_representable,
        0 as load_order
    from areas

)

select * from final
