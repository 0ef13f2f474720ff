{#
  The registry of polymorphic references: each entity_type value the app
  writes (reminders, note_links, entity_tags, activity_log, search_index,
  saved_views) and the v2 table whose id it names.
#}
{% macro entity_type_models() %}
    {{ return({
        'area': 'areas',
        'bookmark': 'bookmarks',
        'calendar_event': 'calendar_events',
        'capture': 'capture',
        'contact': 'contacts',
        'daily_focus': 'daily_focus',
        'domain': 'domains',
        'file': 'files',
        'list': 'lists',
        'milestone': 'milestones',
        'note': 'notes',
        'project': 'projects',
        'release': 'releases',
        'reminder': 'reminders',
        'task': 'tasks',
    }) }}
{% endmacro %}
