-- The queries the app's screens run most (plan sections 3 and 4), as the app sends them:
-- SQLAlchemy text() with bound :parameters. Each names the index that serves it, declared in
-- its table's YAML contract (config.meta.indexes); python_tests/test_app.py checks, with
-- enable_seqscan = off, that the plan reads that index and, unless it says `sorted: no`, needs
-- no Sort because a plain index scan gives the order (there with enable_bitmapscan and
-- enable_sort off too: the sample is too small for the planner to prefer the ordered scan alone).

-- name: tasks of a project
-- index: tasks_project_id_sort_order_idx
select id, title, status, priority, due_date
from tasks
where project_id = :project_id and is_active
order by sort_order;

-- name: tasks of a domain
-- index: tasks_domain_id_sort_order_idx
select id, title, status, priority, due_date
from tasks
where domain_id = :domain_id and is_active
order by sort_order;

-- name: subtasks
-- index: tasks_parent_id_sort_order_idx
select id, title, status
from tasks
where parent_id = :task_id and is_active
order by sort_order;

-- name: today's focus
-- index: daily_focus_focus_date_sort_order_idx
select id, task_id, domain_id, completed, note
from daily_focus
where focus_date = :day and is_active
order by sort_order;

-- name: unprocessed capture inbox
-- index: capture_inbox_idx
select id, raw_text, source, created_at
from capture
where not processed and is_active
order by sort_order;

-- name: notes of a project
-- index: notes_project_id_pinned_updated_at_idx
select id, title, is_pinned, updated_at
from notes
where project_id = :project_id and is_active
order by is_pinned desc, updated_at desc;

-- name: due reminders
-- index: reminders_due_idx
select id, entity_type, entity_id, remind_at, snoozed_until
from reminders
where not delivered and is_active and coalesce(snoozed_until, remind_at) <= :now
order by coalesce(snoozed_until, remind_at);

-- name: reminders of an item
-- index: reminders_entity_idx
-- sorted: no (an item has a few reminders)
select id, remind_at, delivered
from reminders
where entity_type = :entity_type and entity_id = :entity_id and is_active
order by remind_at;

-- name: bookmarks in a folder
-- index: bookmarks_folder_id_sort_order_idx
select id, label, url
from bookmarks
where folder_id = :folder_id and is_active
order by sort_order;

-- name: search
-- index: search_index_document_idx
-- sorted: no (by rank, computed per match)
select entity_type, entity_id, title, ts_rank(document, websearch_to_tsquery('simple', :q)) as rank
from search_index
where document @@ websearch_to_tsquery('simple', :q) and is_active
order by rank desc
limit 50;
