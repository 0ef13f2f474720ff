# Sourced by the commands in scripts/: the project virtualenv with the pinned
# dependencies (made or updated when requirements.txt changes) and the project
# itself installed editable, which puts the `lifeos` command on PATH (redone when
# pyproject.toml changes), dbt's profile (profiles.yml.example, copied once), and
# the project folder as working dir.
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VENV="${LIFEOS_VENV:-$ROOT/.venv}"
want=$(sha256sum "$ROOT/requirements.txt" | cut -d' ' -f1)
if [ "$(cat "$VENV/.requirements.sha256" 2>/dev/null)" != "$want" ]; then
    echo "Installing the pinned dependencies into $VENV ..." >&2
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install --quiet --disable-pip-version-check -r "$ROOT/requirements.txt"
    echo "$want" >"$VENV/.requirements.sha256"
fi
want=$(sha256sum "$ROOT/pyproject.toml" | cut -d' ' -f1)
if [ "$(cat "$VENV/.pyproject.sha256" 2>/dev/null)" != "$want" ]; then
    "$VENV/bin/pip" install --quiet --disable-pip-version-check --no-deps -e "$ROOT"
    echo "$want" >"$VENV/.pyproject.sha256"
fi
export PATH="$VENV/bin:$PATH"
[ -f "$ROOT/profiles.yml" ] || cp "$ROOT/profiles.yml.example" "$ROOT/profiles.yml"
export DBT_PROFILES_DIR="${DBT_PROFILES_DIR:-$ROOT}"
cd "$ROOT"
