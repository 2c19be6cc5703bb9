#!/usr/bin/env bash
# The container image's two Python environments, installed from the locks. The Dockerfile runs
# this script; so does `make image-envs`, which builds the same environments as virtualenvs
# where no Docker engine runs, for the production rehearsal (tests/rehearsal).
#
#   install-environments.sh dbt DBT_VENV       dbt alone, in a new virtualenv (ELT_DBT_EXECUTABLE)
#   install-environments.sh airflow PYTHON     Cosmos, the providers and this project, into the
#                                              Python that runs Airflow (the image's own)
# Run from the directory holding the lock files, pyproject.toml and src/.
set -euo pipefail

case "${1:-}" in
    dbt)
        python3.11 -m venv "$2"
        # The official image sets PIP_USER=true for its own environment; a virtualenv has no user site.
        PIP_USER=false "$2/bin/pip" install --quiet --disable-pip-version-check -r requirements-dbt.txt
        "$2/bin/pip" check
        ;;
    airflow)
        "$2" -m pip install --quiet --disable-pip-version-check -r requirements-image.txt
        "$2" -m pip install --quiet --disable-pip-version-check --no-deps .
        # Fails the build when a pin here breaks a package the base image already had.
        "$2" -m pip check
        ;;
    *)
        echo "usage: $0 dbt DBT_VENV | airflow PYTHON" >&2
        exit 2
        ;;
esac
