with

capture as (

    select
        *,
        count(*) over (partition by capture_id) as copies
    from {{ ref('stg_v1__capture') }}

),

tasks as (

    {{ reference_verdicts('int_tasks') }}

),

checked as (

    select
        capture.*,
        {{ kept_reference('task_id', 'tasks') }} as kept_task_id,
        {{ verdict([
            reject_if_id_null_or_repeated('capture_id', 'copies'),
            reject_if_null('raw_text'),
            reject_if_null('processed'),
            reject_if_null('created_at')
        ]) }},
        {{ adjustments([('task_id', 'tasks')]) }} as adjustment
    from capture
    left join tasks on capture.task_id = tasks.id

),

final as (

    select
        capture_id as id,
        raw_text,
        processed,
        kept_task_id as task_id,
        created_at,
        null::uuid as domain_id,
        null::uuid as project_id,
        'web' as source,
        created_at as updated_at,
        true as is_active,
        {{ sort_order(order_by='reject_rule is not null, created_at, capture_id') }} as sort_order,
        reject_rule,
        reject_detail,
        adjustment
    from checked

)

select * from final
