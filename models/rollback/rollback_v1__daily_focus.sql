with

daily_focus as (

    select * from {{ ref('daily_focus') }}

),

final as (

    select
        id,
        focus_date,
        task_id,
        slot,
        completed,
        note,
        created_at,
        null::text as not_representable,
        0 as load_order
    from daily_focus

)

select * from final
