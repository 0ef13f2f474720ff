{#
  Check 4, file accessibility: every v2 files row has its blob on disk per the
  manifest the files step writes (source lifeos_migration.file_manifest): a
  row for its v1 id, in a good status, at the row's storage_path, with the
  size v1 recorded (size_bytes, else Storage's metadata size) and, wherever
  Storage recorded an MD5 eTag, that md5. Multipart eTags ("<hex>-<parts>")
  are no MD5 and are not compared. Returns each file with its problem.

  A blob missing at the source (manifest status missing) is a loss that may be
  accepted (macros/loss_accepted.sql: scripts/migrate --accept-rejects, or the
  acceptance recorded by the run that published live v2); the row's metadata
  is then in v2 and the check passes for it. A blob with the wrong size or
  checksum is never accepted.

  A run without a files step has no manifest: the rule fails with one row
  that says so (the mart's other rules still run); pass --vars
  '{files_checked: false}' to leave this rule out on purpose (mart_checks);
  scripts/report then lists the check as "not checked", never as passed.
#}
{% macro file_blobs_verified(model, v1_table='files', ok_statuses=['copied', 'present', 'repaired']) %}
    {%- set manifest_table = source('lifeos_migration', 'file_manifest') -%}
    {%- if execute and not adapter.get_relation(
        database=manifest_table.database, schema=manifest_table.schema, identifier=manifest_table.identifier) %}
    {#- one failing row that says what to do; the mart's other rules still run -#}
    select {{ sql_literal(manifest_table ~ " is missing: run the files step first (scripts/migrate"
        ~ " --files-from DIR|supabase), or pass --vars '{files_checked: false}' to leave files unchecked") }} as problem
    {%- else %}

    with

    v2 as (

        select id, storage_path from {{ model }}

    ),

    v1 as (

        {%- set types = contract_data_types(model) %}
        select
            {{ as_v2_type('id', types.get('id')) }} as id,
            {{ as_v2_type('size_bytes', types.get('size_bytes')) }} as size_bytes
        from {{ source('v1', v1_table) }}

    ),

    manifest as (

        select * from {{ manifest_table }}

    ),

    storage_objects as (

        select
            name as object_key,
            (metadata ->> 'size')::bigint as size_bytes,
            substring(metadata ->> 'eTag' from '^"?([0-9a-fA-F]{32})"?$') as etag_md5
        from {{ source('v1_storage', 'storage_objects') }}
        where bucket_id = '{{ var("storage_bucket") }}'

    ),

    joined as (

        select
            v2.id,
            v2.storage_path,
            manifest.file_id as manifest_file_id,
            manifest.object_key,
            manifest.status,
            manifest.local_path,
            manifest.size_bytes as blob_size,
            coalesce(v1.size_bytes, storage_objects.size_bytes) as expected_size,
            manifest.md5 as blob_md5,
            lower(storage_objects.etag_md5) as expected_md5
        from v2
        left join v1 on v2.id = v1.id
        left join manifest on v2.id = manifest.file_id
        left join storage_objects on manifest.object_key = storage_objects.object_key

    ),

    checked as (

        select
            *,
            case
                when manifest_file_id is null then 'no blob in the file manifest'
                when status = 'missing' and {{ loss_accepted("'files'", 'joined.id::text', "'blob_missing'") }} then null
                when status = 'missing' then 'blob missing at source: ' || object_key
                when status not in ('{{ ok_statuses | join("', '") }}') then 'blob status ' || status
                when local_path is distinct from storage_path then 'blob is at ' || local_path || ', not at storage_path'
                when blob_size is distinct from expected_size then 'blob size ' || blob_size || ' != v1 size ' || expected_size
                when expected_md5 is not null and lower(blob_md5) is distinct from expected_md5
                    then 'blob md5 ' || coalesce(blob_md5, 'NULL') || ' != Storage eTag ' || expected_md5
            end as problem
        from joined

    )

    select * from checked
    where problem is not null
    {%- endif %}

{% endmacro %}
