with

source as (

    select * from {{ source('v1', 'links') }}

),

renamed as (

    select
        cast(id as uuid) as link_id,
        cast(domain_id as uuid) as domain_id,
        cast(project_id as uuid) as project_id,
        cast(task_id as uuid) as task_id,
        cast(label as text) as label,
        cast(url as text) as url,
        cast(description as text) as description,
        cast(created_at as timestamptz) as created_at,
        to_jsonb(source) as v1_row
    from source

)

select * from renamed
