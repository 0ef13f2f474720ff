with

source as (

    select * from {{ source('v1', 'projects') }}

),

renamed as (

    select
        cast(id as uuid) as project_id,
        cast(domain_id as uuid) as domain_id,
        cast(area_id as uuid) as area_id,
        cast(name as text) as name,
        cast(description as text) as description,
        cast(status as text) as status,
        cast(due_date as date) as due_date,
        cast(created_at as timestamptz) as created_at,
        cast(updated_at as timestamptz) as updated_at,
        to_jsonb(source) as v1_row
    from source

)

select * from renamed
