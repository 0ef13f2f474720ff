with

source as (

    select * from {{ source('v1', 'daily_focus') }}

),

renamed as (

    select
        cast(id as uuid) as daily_focus_id,
        cast(focus_date as date) as focus_date,
        cast(task_id as uuid) as task_id,
        -- bigint, the widest integer: a v1 value beyond v2's integer becomes int_daily_focus' out_of_range verdict
        cast(slot as bigint) as slot,
        cast(completed as boolean) as completed,
        cast(note as text) as note,
        cast(created_at as timestamptz) as created_at,
        to_jsonb(source) as v1_row
    from source

)

select * from renamed
