with

source as (

    select * from {{ source('v1', 'reminders') }}

),

renamed as (

    select
        cast(id as uuid) as reminder_id,
        cast(task_id as uuid) as task_id,
        cast(remind_at as timestamptz) as remind_at,
        cast(delivered as boolean) as delivered,
        cast(created_at as timestamptz) as created_at,
        to_jsonb(source) as v1_row
    from source

)

select * from renamed
