"""lifeos: the Life OS v1 -> v2 migration's one command line. `lifeos COMMAND --help` describes each command."""

from __future__ import annotations

import export_ddl
import migrate
import move_files
import publish
import report
import restore_v1
from lifeos import command

# Commands whose modules parse their own arguments: every argument after the command's name is theirs.
OWN_ARGUMENTS = {"restore-v1": restore_v1, "move-files": move_files}


def add_own(commands: command.Commands) -> None:
    for name, module in OWN_ARGUMENTS.items():
        own = commands.add_parser(name, add_help=False, help=(module.__doc__ or "").strip().splitlines()[0])
        own.set_defaults(own_main=module.main)


def main(argv: list[str] | None = None) -> int:
    adders = (migrate.add_commands, publish.add_commands, report.add_commands, add_own, export_ddl.add_commands)
    parser = command.parser(__doc__, adders)
    args, rest = parser.parse_known_args(argv)
    if hasattr(args, "own_main"):
        return args.own_main(rest)
    if rest:
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    return command.execute(args)
