"""``elt run --full-refresh``: the command it starts is one Airflow's own parser reads as the run's conf."""

from __future__ import annotations

import json

from airflow.cli.cli_parser import get_parser

from elt_platform.cli.commands import run_command


def test_full_refresh_reaches_airflow_as_the_run_s_conf():
    command = run_command("shop_elt", full_refresh=True)

    args = get_parser().parse_args(command[1:])

    assert command[0] == "airflow"
    assert args.dag_id == "shop_elt"
    assert json.loads(args.conf) == {"full_refresh": True}


def test_without_the_flag_the_run_has_no_conf():
    args = get_parser().parse_args(run_command("shop_elt")[1:])
    assert args.dag_id == "shop_elt" and args.conf is None
