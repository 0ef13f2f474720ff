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
        {{ verdict([
            reject_if_id_null_or_repeated('area_id', 'copies'),
            reject_unless_parent_migrated('domain_id', 'domains'),
            reject_if_null('name'),
            reject_if_null('created_at')
        ]) }}
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
        {{ sort_order(partition_by='domain_id', order_by='reject_rule is not null, created_at, area_id') }}
            as sort_order,
        null::text as icon,
        null::text as color,
        reject_rule,
        reject_detail,
        null::text as adjustment
    from checked

)

select * from final
