with

source as (

    select * from {{ source('v1', 'context_types') }}

),

renamed as (

    select
        cast(id as uuid) as context_type_id,
        cast(value as text) as value,
        cast(label as text) as label,
        cast(is_system as boolean) as is_system,
        to_jsonb(source) as v1_row
    from source

)

select * from renamed
