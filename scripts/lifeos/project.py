"""What the merge of scripts/migrate --carry-forward needs of the dbt project, read from the manifest the run
parsed: each mart column's origin (`config.meta.origin` in the marts' YAML: copy and rename columns hold v1's
values, derived ones the migration computes, new ones only v2 has), the polymorphic references (their rule
polymorphic_reference_resolves of mart_checks, and the registry of entity types, macros/entity_types.sql), the
acyclic hierarchies (their rule acyclic) and the tables whose rows outlive their entity (history)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import jinja2

from lifeos import mart_checks

if TYPE_CHECKING:
    from dbt.contracts.graph.manifest import Manifest

V1_HELD = ("copy", "rename")  # the origins of the columns whose values come from v1


@dataclass
class Polymorphic:
    """A polymorphic reference (its rule polymorphic_reference_resolves): the table, its type and id columns,
    and the table each entity type names."""

    table: str
    type_column: str
    id_column: str
    targets: dict[str, str]


@dataclass
class Project:
    """What the merge needs of the dbt project, from its manifest: each mart column's origin, the polymorphic
    references, the acyclic hierarchies (child, parent columns) and the tables whose rows outlive their
    entity (history: `on_entity_delete`)."""

    origins: dict[str, dict[str, str]]
    polymorphic: list[Polymorphic]
    acyclic: dict[str, list[tuple[str, str]]]
    history: set[str]

    @classmethod
    def from_manifest(cls, manifest: Manifest) -> Project:
        registry: dict[str, str] = {}
        macro = manifest.macros["macro.lifeos_migration.entity_type_models"].macro_sql
        jinja2.Environment().from_string(macro + "{{ entity_type_models() }}").render(**{"return": registry.update})
        origins, polymorphic, acyclic, history = {}, [], {}, set()
        for node in manifest.nodes.values():
            if node.resource_type == "model" and node.config.schema == "v2":
                origins[node.name] = {name: column.meta.get("origin", "new") for name, column in node.columns.items()}
                if "insert" in (node.config.meta.get("on_entity_delete") or {}):  # a history row records it
                    history.add(node.name)
            check = getattr(node, "test_metadata", None)
            if node.resource_type != "test" or check is None or check.name != mart_checks.TEST:
                continue
            table = node.attached_node.split(".")[-1]
            rules = mart_checks.rules(check.kwargs)
            if reference := rules.get("polymorphic_reference_resolves"):
                targets = {kind: registry[kind] for kind in reference["entity_types"]}
                polymorphic.append(Polymorphic(table, reference["column_name"], reference["id_column"], targets))
            if edge := rules.get("acyclic"):
                acyclic.setdefault(table, []).append((edge["child_column"], edge["parent_column"]))
        return cls(origins, polymorphic, acyclic, history)

    def columns(self, table: str, *origins: str) -> set[str]:
        return {name for name, origin in self.origins.get(table, {}).items() if origin in origins}

    def merged_tables(self) -> set[str]:
        """The marts the merge writes: all but those derived whole (search_index, rebuilt after the merge)."""
        return {table for table, columns in self.origins.items() if set(columns.values()) != {"derived"}}
