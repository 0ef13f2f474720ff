with

capture as (

    select * from {{ ref('int_capture') }}

),

final as (

    select
        id,
        raw_text,
        processed,
        task_id,
        created_at,
        domain_id,
        project_id,
        source,
        updated_at,
        is_active,
        sort_order
    from capture
    where reject_rule is null

)

select * from final
