with

daily_focus as (

    select * from {{ ref('int_daily_focus') }}

),

final as (

    select
        id,
        focus_date,
        task_id,
        cast(slot as integer) as slot,  -- int_daily_focus kept what fits only
        completed,
        note,
        created_at,
        domain_id,
        updated_at,
        is_active,
        sort_order
    from daily_focus
    where reject_rule is null

)

select * from final
