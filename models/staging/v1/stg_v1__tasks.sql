with

source as (

    select * from {{ source('v1', 'tasks') }}

),

renamed as (

    select
        cast(id as uuid) as task_id,
        cast(domain_id as uuid) as domain_id,
        cast(project_id as uuid) as project_id,
        cast(parent_id as uuid) as parent_id,
        cast(title as text) as title,
        cast(description as text) as description,
        -- bigint, the widest integer: a v1 value beyond v2's integer becomes int_tasks' out_of_range verdict
        cast(priority as bigint) as priority,
        cast(status as text) as status,
        cast(due_date as date) as due_date,
        cast(deadline as date) as deadline,
        cast(recurrence as text) as recurrence,
        cast(tags as text[]) as tags,
        cast(context as text) as context,
        cast(is_custom_context as boolean) as is_custom_context,
        cast(created_at as timestamptz) as created_at,
        cast(updated_at as timestamptz) as updated_at,
        cast(completed_at as timestamptz) as completed_at,
        to_jsonb(source) as v1_row
    from source

)

select * from renamed
