with

capture as (

    select * from {{ ref('capture') }}

),

final as (

    select
        id,
        raw_text,
        processed,
        task_id,
        created_at,
        null::text as not_representable,
        0 as load_order
    from capture

)

select * from final
