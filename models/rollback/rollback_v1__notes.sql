with

notes as (

    select * from {{ ref('notes') }}

),

final as (

    select
        id,
        domain_id,
        project_id,
        task_id,
        title,
        body,
        content_format,
        tags,
        created_at,
        updated_at,
        null::text as not_representable,
        0 as load_order
    from notes

)

select * from final
