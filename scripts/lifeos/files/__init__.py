"""The files step: v1's file blobs from Supabase Storage (or a staging folder) to local disk under the storage root.

Which blobs: one per v1 `files` row, read from the table `v2_work.int_files`
(object key and local storage_path): the model alone decides which keys may
become paths, and a row it rejected for its storage_path is reported as
refused with the model's reason. Blobs are checked against the
`v1.storage_objects` inventory (size and eTag MD5). Objects in the bucket that
no row references are copied to `<storage root>/<var orphans_folder>/<key>`, a
folder no referenced key may enter (int_files rejects such a key), so nothing
is lost and nothing collides.

The modules, one per concern:
    blobs      what a blob should be and what was found (the manifest entry), the step's exceptions
    redact     the service key kept out of every message; text made safe for a terminal
    tree       a folder walked one name at a time without following links (the storage root, a staging folder)
    sources    what a source of blobs is, and a staging folder
    bucket     the live bucket through the supabase client and its httpx session: the key to its origin only
    transfer   one blob into place: size cap, deadline, retries (Retry-After honoured), verify, rename
    plan       which blobs go where, from int_files, the inventory and the source's listing
    manifest   the outcome of every blob: the table lifeos_migration.file_manifest, a JSON file, the console
    step       the step itself and its command line (scripts/move_files.py)
"""
