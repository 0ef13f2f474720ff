with

notes as (

    select
        *,
        count(*) over (partition by note_id) as copies
    from {{ ref('stg_v1__notes') }}

),

domains as (

    {{ reference_verdicts('int_domains') }}

),

projects as (

    {{ reference_verdicts('int_projects') }}

),

tasks as (

    {{ reference_verdicts('int_tasks') }}

),

checked as (

    select
        notes.*,
        {{ kept_reference('domain_id', 'domains') }} as kept_domain_id,
        {{ kept_reference('project_id', 'projects') }} as kept_project_id,
        {{ kept_reference('task_id', 'tasks') }} as kept_task_id,
        {{ verdict([
            reject_if_id_null_or_repeated('note_id', 'copies'),
            reject_if_null('title'),
            reject_if_null('content_format'),
            reject_if("content_format not in ('markdown', 'plain', 'html')", 'out_of_range',
                "'content_format ' || content_format || ' is not markdown, plain or html'"),
            reject_if_null('created_at'),
            reject_if_null('updated_at')
        ]) }},
        {{ adjustments([('domain_id', 'domains'), ('project_id', 'projects'), ('task_id', 'tasks')]) }}
            as adjustment
    from notes
    left join domains on notes.domain_id = domains.id
    left join projects on notes.project_id = projects.id
    left join tasks on notes.task_id = tasks.id

),

final as (

    select
        note_id as id,
        kept_domain_id as domain_id,
        kept_project_id as project_id,
        kept_task_id as task_id,
        title,
        body,
        content_format,
        tags,
        created_at,
        updated_at,
        adjustment,
        false as is_pinned,
        true as is_active,
        0 as sort_order,
        reject_rule,
        reject_detail
    from checked

)

select * from final
