with

areas as (

    select
        *,
        count(*) over (partition by area_id) as copies
    from {{ ref('stg_v1__areas') }}

),

domains as (

    {{ reference_verdicts('int_domains') }}

),

checked as (

    select
        areas.*,
        coalesce(
            {{ id_check('area_id', 'copies') }},
            {{ required_reference_check('domain_id', 'domains') }},
            {{ required_check('name') }},
            {{ required_check('created_at') }}
        ) as verdict
    from areas
    left join domains on areas.domain_id = domains.id

),

final as (

    select
        area_id as id,
        domain_id,
        name,
        description,
        created_at,
        created_at as updated_at,
        true as is_active,
        {{ sort_order(partition_by='domain_id', order_by='verdict is not null, created_at, area_id') }}
            as sort_order,
        null::text as icon,
        null::text as color,
        verdict[1] as reject_rule,
        verdict[2] as reject_detail,
        null::text as adjustment
    from checked

)

select * from final
