#!/usr/bin/env bash
# Sourced by scripts/run and scripts/test: creates .venv and installs the project when needed.
is_python_311_plus() { "$1" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; }

ensure_venv() {
    if ! is_python_311_plus .venv/bin/python; then
        local python="" candidate
        for candidate in python3 python3.12 python3.11; do
            if command -v "$candidate" >/dev/null && is_python_311_plus "$candidate"; then
                python=$candidate
                break
            fi
        done
        if [[ -z $python ]]; then
            echo "AgentHooks needs Python 3.11 or newer: install python3.11 or python3.12 and try again." >&2
            exit 1
        fi
        echo "Creating .venv with $python …" >&2
        rm -rf .venv
        "$python" -m venv .venv
    fi
    # Reinstall only when the dependencies (or the checkout's location) changed since the last install.
    local stamp=.venv/.agenthooks-installed wanted
    wanted="$(cat pyproject.toml; pwd)"
    if [[ ! -f $stamp || "$(cat "$stamp")" != "$wanted" ]]; then
        echo "Installing AgentHooks and its dependencies into .venv …" >&2
        .venv/bin/python -m pip install --quiet --disable-pip-version-check -e '.[test]'
        printf '%s' "$wanted" >"$stamp"
    fi
}
