"""Where the DAG reads a project's manifest: where dbt writes it, in dbt's own order."""

from __future__ import annotations

import pytest

from elt_platform.dbt_project_files import manifest_location, profile_name
from elt_platform.errors import ConfigurationError


def project(tmp_path, extra: str = ""):
    tmp_path.mkdir(exist_ok=True)
    (tmp_path / "dbt_project.yml").write_text(f"name: shop\nprofile: shop_profile\n{extra}")
    return tmp_path


def test_dbt_s_default_target_folder(tmp_path, monkeypatch):
    monkeypatch.delenv("DBT_TARGET_PATH", raising=False)
    location = manifest_location(project(tmp_path))
    assert location.path == tmp_path / "target" / "manifest.json"
    assert location.why == "dbt's default target path"


def test_the_project_s_target_path_relative_to_its_folder_and_rendered_as_dbt_renders_it(tmp_path, monkeypatch):
    monkeypatch.delenv("DBT_TARGET_PATH", raising=False)
    monkeypatch.setenv("BUILD_DIR", "out")
    location = manifest_location(project(tmp_path / "p", "target-path: \"../{{ env_var('BUILD_DIR') }}\"\n"))
    assert location.path == tmp_path / "out" / "manifest.json"
    assert "target-path: ../{{ env_var('BUILD_DIR') }} in " in location.why


def test_dbt_target_path_wins_over_the_project_s_and_an_explicit_path_over_both(tmp_path, monkeypatch):
    root = project(tmp_path, "target-path: elsewhere\n")
    monkeypatch.setenv("DBT_TARGET_PATH", "from_env")
    assert manifest_location(root).path == tmp_path / "from_env" / "manifest.json"
    assert manifest_location(root, tmp_path / "given.json").path == tmp_path / "given.json"


def test_a_target_path_that_cannot_be_rendered_names_the_file_and_the_fix(tmp_path, monkeypatch):
    monkeypatch.delenv("DBT_TARGET_PATH", raising=False)
    monkeypatch.delenv("NOT_SET_ANYWHERE", raising=False)
    root = project(tmp_path, "target-path: \"{{ env_var('NOT_SET_ANYWHERE') }}\"\n")
    with pytest.raises(FileNotFoundError) as error:
        manifest_location(root)
    assert f"{tmp_path / 'dbt_project.yml'}: target-path" in str(error.value)
    assert "env_var('NOT_SET_ANYWHERE') is not set and has no default" in str(error.value)
    assert "Fix: set what it needs, or pass manifest_path= to build_elt_dag." in str(error.value)


def test_a_missing_manifest_says_where_it_looked_why_and_the_fix(tmp_path, monkeypatch):
    monkeypatch.delenv("DBT_TARGET_PATH", raising=False)
    root = project(tmp_path / "p", "target-path: ../docs\n")
    with pytest.raises(FileNotFoundError) as error:
        manifest_location(root).require(root)
    assert str(error.value).startswith(
        f"dbt manifest not found at {tmp_path / 'docs' / 'manifest.json'} "
        f"(target-path: ../docs in {root / 'dbt_project.yml'}). Fix: run `dbt parse` in {root}"
    )


def test_the_profile_is_the_project_s_profile_else_its_name(tmp_path):
    assert profile_name(project(tmp_path)) == "shop_profile"
    (tmp_path / "dbt_project.yml").write_text("name: shop\n")
    assert profile_name(tmp_path) == "shop"


def test_an_unreadable_dbt_project_yml_is_a_configuration_error_naming_it(tmp_path):
    (tmp_path / "dbt_project.yml").write_text("name: a\nname: b\n")
    with pytest.raises(ConfigurationError, match=r"dbt_project\.yml"):
        profile_name(tmp_path)
