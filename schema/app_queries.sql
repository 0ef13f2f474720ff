-- The queries the app's screens run most (plan sections 3 and 4), as the app sends them:
-- SQLAlchemy text() with bound :parameters. Each names the indexes that serve it (comma-separated), declared in
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

-- name: today and overdue
-- index: tasks_due_date_priority_idx
select id, title, status, priority, due_date
from tasks
where due_date <= :day and status not in ('done', 'cancelled') and is_active
order by due_date, priority
limit 200;

-- name: saved view of tasks by status
-- index: tasks_status_due_date_idx
select id, title, priority, due_date, project_id
from tasks
where status = :status and priority <= :priority and is_active
order by due_date, priority
limit 200;

-- name: saved view of a project's open tasks
-- index: tasks_project_id_sort_order_idx
-- sorted: no (a project's few hundred tasks, by due date)
select id, title, status, priority, due_date
from tasks
where project_id = :project_id and status = :status and is_active
order by due_date nulls last, priority;

-- name: recently edited notes
-- index: notes_updated_at_idx
select id, title, updated_at
from notes
where is_active
order by updated_at desc
limit 20;

-- name: recently edited bookmarks
-- index: bookmarks_updated_at_idx
select id, label, url, updated_at
from bookmarks
where is_active
order by updated_at desc
limit 20;

-- name: time spent on a task
-- index: time_entries_task_id_idx
-- sorted: no (one total)
select coalesce(sum(ended_at - started_at), interval '0') as spent
from time_entries
where task_id = :task_id and is_active;

-- name: time spent on a project, on it or its tasks
-- index: time_entries_project_id_idx, tasks_project_id_sort_order_idx, time_entries_task_id_idx
-- sorted: no (one total)
select coalesce(sum(spent), interval '0') as spent
from (
    select ended_at - started_at as spent
    from time_entries
    where project_id = :project_id and is_active
    union all
    select entries.ended_at - entries.started_at
    from tasks
    inner join time_entries as entries on tasks.id = entries.task_id
    where
        tasks.project_id = :project_id and tasks.is_active and entries.is_active
        and entries.project_id is distinct from :project_id
) as project_entries;

-- name: time spent per day
-- index: time_entries_started_at_idx
-- sorted: no (a week's entries, grouped)
select started_at::date as day, sum(ended_at - started_at) as spent
from time_entries
where started_at >= :since and started_at < :until and is_active
group by started_at::date
order by day;

-- name: calendar range with attendees
-- index: calendar_events_starts_at_idx, event_attendees_calendar_event_id_contact_id_key
select events.id, events.title, events.starts_at, events.ends_at, attendees.contact_id, attendees.response_status
from calendar_events as events
left join event_attendees as attendees on events.id = attendees.calendar_event_id and attendees.is_active
where events.starts_at >= :since and events.starts_at < :until and events.is_active
order by events.starts_at;

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
-- (not those of an item that is soft-deleted or under a soft-deleted project, domain or area: its search row is inactive)
select id, entity_type, entity_id, remind_at, snoozed_until
from reminders
where
    not delivered and is_active and coalesce(snoozed_until, remind_at) <= :now
    and not exists (
        select from search_index
        where
            search_index.entity_type = reminders.entity_type
            and search_index.entity_id = reminders.entity_id
            and not search_index.is_active
    )
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
-- sorted: no (by rank, computed per candidate)
-- Only the 200 most recently changed matches are ranked: a common word matches tens of thousands of items, and
-- ranking each costs more than the search (a rare word's matches are found through the GIN index, a common
-- word's by walking search_index_updated_at_idx newest first; the planner picks by the word's frequency).
with candidates as (
    select entity_type, entity_id, title, document
    from search_index
    where document @@ search_query(:q) and is_active
    order by updated_at desc
    limit 200
)

select entity_type, entity_id, title, ts_rank(document, search_query(:q)) as rank
from candidates
order by rank desc
limit 50;

-- name: search as you type
-- index: search_index_document_idx
-- sorted: no (newest matches first)
select entity_type, entity_id, title
from search_index
where document @@ search_prefix_query(:q) and is_active
order by updated_at desc
limit 10;
