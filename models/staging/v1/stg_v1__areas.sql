with

source as (

    select * from {{ source('v1', 'areas') }}

),

renamed as (

    select
        cast(id as uuid) as area_id,
        cast(domain_id as uuid) as domain_id,
        cast(name as text) as name,
        cast(description as text) as description,
        cast(created_at as timestamptz) as created_at,
        to_jsonb(source) as v1_row
    from source

)

select * from renamed
