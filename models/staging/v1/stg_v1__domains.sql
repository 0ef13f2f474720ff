with

source as (

    select * from {{ source('v1', 'domains') }}

),

renamed as (

    select
        cast(id as uuid) as domain_id,
        cast(name as text) as name,
        cast(color as text) as color,
        cast(created_at as timestamptz) as created_at,
        to_jsonb(source) as v1_row
    from source

)

select * from renamed
