with

source as (

    select * from {{ source('v1', 'notes') }}

),

renamed as (

    select
        cast(id as uuid) as note_id,
        cast(domain_id as uuid) as domain_id,
        cast(project_id as uuid) as project_id,
        cast(task_id as uuid) as task_id,
        cast(title as text) as title,
        cast(body as text) as body,
        cast(content_format as text) as content_format,
        cast(tags as text[]) as tags,
        cast(created_at as timestamptz) as created_at,
        cast(updated_at as timestamptz) as updated_at,
        to_jsonb(source) as v1_row
    from source

)

select * from renamed
