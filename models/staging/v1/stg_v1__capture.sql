with

source as (

    select * from {{ source('v1', 'capture') }}

),

renamed as (

    select
        cast(id as uuid) as capture_id,
        cast(raw_text as text) as raw_text,
        cast(processed as boolean) as processed,
        cast(task_id as uuid) as task_id,
        cast(created_at as timestamptz) as created_at,
        to_jsonb(source) as v1_row
    from source

)

select * from renamed
