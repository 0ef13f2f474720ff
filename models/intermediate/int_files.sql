{#
  files.storage_path becomes the local path var('storage_root') || '/' || object_key.
  The object key (relative to the bucket, folders kept) is read from every shape
  v1 may hold:
    <key>                                          a bare object key
    <bucket>/<key>                                 the key behind the bucket name
    https://<host>/storage/v1/object/public/<bucket>/<key>
    https://<host>/storage/v1/object/authenticated/<bucket>/<key>
    https://<host>/storage/v1/object/sign/<bucket>/<key>?token=...
  (and render/image/... URLs; query and fragment are dropped). Storage object
  names are literal: only a URL's key is percent-decoded, a bare key keeps its
  '%20' or '+'. When that reading names no object of v1's storage.objects
  inventory (stg_v1_storage__objects) but the other reading (a URL's key as
  written, a bare key decoded) does, the inventory's name wins.
  This model is the one place that decides whether a key may become a path
  under the storage root; the files step acts on its verdict. A key that is
  empty, absolute, a folder, has an empty, '.' or '..' segment, a NUL or
  invalid UTF-8 never becomes a path (unsafe_storage_path); nor does a URL of
  another shape (unknown_storage_path) or of another bucket (foreign_bucket).
  A safe key no filesystem can hold as a file is unstorable_storage_path: a
  segment over 255 bytes (NAME_MAX), a path over 4095 bytes (PATH_MAX: the app
  could not open it), a key that is also the folder of another row's key (`X`
  and `X/readme.txt`: the first), or a key in var('orphans_folder'), where the
  files step keeps the bucket's objects no row references (so an orphan never
  lands on a referenced blob). Such an object is then an orphan itself: kept
  under the orphans folder when the filesystem can hold it, refused otherwise.
  `shaped` and `decoded` are materialized: later expressions read their
  columns several times, and inlined, each read would run the URL regex or the
  decoding again (37 s instead of 1.6 s for 20,000 files).
#}
with

files as (

    -- every column but v1_row: `shaped` is materialized, and the whole v1 row would
    -- ride through it; migration_rejects reads v1_row from staging
    select
        file_id,
        domain_id,
        project_id,
        task_id,
        capture_id,
        filename,
        original_filename,
        storage_path,
        mime_type,
        size_bytes,
        description,
        tags,
        created_at,
        updated_at,
        count(*) over (partition by file_id) as copies
    from {{ ref('stg_v1__files') }}

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

capture as (

    {{ reference_verdicts('int_capture') }}

),

inventory as (

    -- the object keys of the app's bucket in v1's storage.objects inventory, each once
    select distinct object_key
    from {{ ref('stg_v1_storage__objects') }}
    where bucket_id = '{{ var("storage_bucket") }}'

),

shaped as materialized (

    select
        *,
        storage_path ~ '^[a-zA-Z][a-zA-Z0-9+.-]*://' as is_url,
        regexp_match(
            storage_path,
            '^[a-zA-Z][a-zA-Z0-9+.-]*://[^/?#]*/(?:[^?#]*/)?'
            || '(?:object|render/image)/(?:public|authenticated|sign)/([^/?#]+)/([^?#]*)'
        ) as url_parts
    from files

),

located as (

    select
        *,
        case
            when is_url then url_parts[1]
            else '{{ var("storage_bucket") }}'
        end as bucket,
        case
            when is_url then url_parts[2]
            when starts_with(storage_path, '{{ var("storage_bucket") }}/')
                then substr(storage_path, length('{{ var("storage_bucket") }}/') + 1)
            else storage_path
        end as written_key
    from shaped

),

decoded as materialized (

    select
        *,
        case when is_url then {{ percent_decode('written_key') }} else written_key end as named_key,
        case when is_url then written_key else {{ percent_decode('written_key') }} end as other_key
    from located

),

resolved as (

    select
        decoded.*,
        case
            when named.object_key is null and other.object_key is not null then decoded.other_key
            else decoded.named_key
        end as decoded_key
    from decoded
    left join inventory as named on decoded.named_key = named.object_key
    left join inventory as other on decoded.other_key = other.object_key

),

path_checked as (

    select
        *,
        {{ verdict([
            reject_if('is_url and url_parts is null', 'unknown_storage_path',
                "'storage_path ' || storage_path || ' is not a Supabase Storage object URL'"),
            reject_if("bucket <> '" ~ var('storage_bucket') ~ "'", 'foreign_bucket',
                "'storage_path ' || storage_path || ' is in bucket ' || bucket || ', not "
                ~ var('storage_bucket') ~ "'"),
            reject_if('decoded_key is null', 'unsafe_storage_path',
                "'storage_path ' || storage_path || ' decodes to invalid UTF-8 or a NUL byte'"),
            reject_if(
                "decoded_key = '' or starts_with(decoded_key, '/') or right(decoded_key, 1) = '/'", 'unsafe_storage_path',
                "'storage_path ' || storage_path || ' gives an empty, absolute or folder object key'"),
            reject_if("string_to_array(decoded_key, '/') && array['.', '..']", 'unsafe_storage_path',
                "'storage_path ' || storage_path || ' has a . or .. segment'"),
            reject_if("'' = any(string_to_array(decoded_key, '/'))", 'unsafe_storage_path',
                "'storage_path ' || storage_path || ' has an empty segment (//)'"),
            reject_if("split_part(decoded_key, '/', 1) = '" ~ var('orphans_folder') ~ "'", 'unstorable_storage_path',
                "'storage_path ' || storage_path || ' is in " ~ var('orphans_folder')
                ~ "/, the folder of the objects no files row references'"),
            reject_if(
                "exists (select from unnest(string_to_array(decoded_key, '/')) as segment"
                ~ " where octet_length(segment) > 255)",
                'unstorable_storage_path',
                "'storage_path ' || storage_path || ' has a name over 255 bytes'"),
            reject_if(
                "octet_length('" ~ var('storage_root') ~ "/' || decoded_key) > 4095", 'unstorable_storage_path',
                "'storage_path ' || storage_path || ' gives a local path over 4095 bytes'")
        ], prefix='path_') }}
    from resolved

),

safe_keys as (

    select
        decoded_key,
        string_to_array(decoded_key, '/') as segments
    from path_checked
    where path_reject_rule is null

),

folders as (

    -- every folder of every key that may become a path ('a' and 'a/b' of 'a/b/c.txt'), with one key inside it
    select
        array_to_string(safe_keys.segments[1:depth], '/') as folder,
        min(safe_keys.decoded_key) as key_inside
    from safe_keys
    cross join lateral generate_series(1, cardinality(safe_keys.segments) - 1) as depth
    group by array_to_string(safe_keys.segments[1:depth], '/')

),

key_checked as (

    select
        path_checked.*,
        {{ verdict([
            reject_as('path_reject_rule', 'path_reject_detail'),
            reject_if('folders.folder is not null', 'unstorable_storage_path',
                "'storage_path ' || storage_path || ' is also the folder of object key ' || folders.key_inside")
        ], prefix='key_') }}
    from path_checked
    left join folders on path_checked.decoded_key = folders.folder

),

checked as (

    select
        key_checked.*,
        {{ kept_reference('domain_id', 'domains') }} as kept_domain_id,
        {{ kept_reference('project_id', 'projects') }} as kept_project_id,
        {{ kept_reference('task_id', 'tasks') }} as kept_task_id,
        {{ kept_reference('capture_id', 'capture') }} as kept_capture_id,
        {{ verdict([
            reject_if_id_null_or_repeated('file_id', 'copies'),
            reject_if_null('filename'),
            reject_if_null('original_filename'),
            reject_if_null('storage_path'),
            reject_as('key_checked.key_reject_rule', 'key_checked.key_reject_detail'),
            reject_if('size_bytes < 0', 'out_of_range', "'size_bytes ' || size_bytes || ' is negative'"),
            reject_if_null('created_at'),
            reject_if_null('updated_at')
        ]) }},
        {{ adjustments([
            ('domain_id', 'domains'), ('project_id', 'projects'), ('task_id', 'tasks'), ('capture_id', 'capture')
        ]) }} as adjustment
    from key_checked
    left join domains on key_checked.domain_id = domains.id
    left join projects on key_checked.project_id = projects.id
    left join tasks on key_checked.task_id = tasks.id
    left join capture on key_checked.capture_id = capture.id

),

final as (

    select
        file_id as id,
        kept_domain_id as domain_id,
        kept_project_id as project_id,
        kept_task_id as task_id,
        kept_capture_id as capture_id,
        filename,
        original_filename,
        case when key_reject_rule is null then decoded_key end as object_key,
        case when key_reject_rule is null then '{{ var("storage_root") }}/' || decoded_key end as storage_path,
        mime_type,
        size_bytes,
        description,
        tags,
        created_at,
        updated_at,
        null::uuid as note_id,
        true as is_active,
        0 as sort_order,
        reject_rule,
        reject_detail,
        adjustment
    from checked

)

select * from final
