"""Configuration: precedence and validation messages that name the key and the fix."""

from __future__ import annotations

import re
from dataclasses import FrozenInstanceError
from dataclasses import fields
from pathlib import Path

import pytest

from uauth import create_app
from uauth.core.settings import DEFAULTS
from uauth.core.settings import SETTINGS
from uauth.core.settings import ConfigError
from uauth.core.settings import Settings
from uauth.core.settings import field_key
from uauth.extension import get_state
from uauth.ops.instance import example_config


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("UAUTH_ISSUER", "id.example.com", "must be an absolute http(s) URL"),
        ("UAUTH_ISSUER", "ftp://id.example.com", "must be an absolute http(s) URL"),
        ("UAUTH_ISSUER", "http://id.example.com", "uses http on the non-loopback host"),
        ("UAUTH_ISSUER", "https://id.example.com/?x=1", "must not contain a query"),
        ("UAUTH_STORAGE", "mysql://db/uauth", "unknown storage scheme 'mysql'"),
        ("UAUTH_STORAGE", "uauth.db", "unknown storage scheme"),
        ("UAUTH_STORAGE", "sqlite://relative.db", "sqlite:///relative/path.db"),
        ("UAUTH_CODE_TTL", 0, "UAUTH_CODE_TTL must be a positive whole number"),
        ("UAUTH_ACCESS_TOKEN_TTL", "-5", "UAUTH_ACCESS_TOKEN_TTL must be a positive whole number"),
        ("UAUTH_REFRESH_TOKEN_TTL", "soon", "must be a positive whole number"),
        ("UAUTH_ID_TOKEN_TTL", 1.5, "must be a positive whole number"),
        ("UAUTH_REQUIRE_PKCE", "maybe", "UAUTH_REQUIRE_PKCE must be true or false"),
        ("UAUTH_SIGNING_ALG", "HS256", "UAUTH_SIGNING_ALG must be one of RS256"),
        ("UAUTH_URL_PREFIX", "auth/", "UAUTH_URL_PREFIX must be empty or start with '/'"),
    ],
)
def test_bad_values_fail_with_a_message_naming_the_key(
    tmp_path: Path, key: str, value: object, message: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        create_app({"UAUTH_STORAGE": "memory://", key: value}, instance_path=tmp_path)
    assert key in str(caught.value)
    assert message in str(caught.value)


@pytest.mark.parametrize(
    "issuer", ["http://127.0.0.1:5000", "http://localhost:8080", "http://[::1]:5000",
               "https://id.example.com", "https://example.com/auth"],
)
def test_good_issuers_are_accepted(tmp_path: Path, issuer: str) -> None:
    app = create_app({"UAUTH_STORAGE": "memory://", "UAUTH_ISSUER": issuer + "/"},
                     instance_path=tmp_path)
    assert app.config["UAUTH_ISSUER"] == issuer, "a trailing slash is normalised away"


def test_precedence_defaults_file_environment_mapping(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "config.py").write_text(
        "UAUTH_CODE_TTL = 30\nUAUTH_ACCESS_TOKEN_TTL = 600\nUAUTH_ID_TOKEN_TTL = 900\n"
    )
    monkeypatch.setenv("UAUTH_ACCESS_TOKEN_TTL", "700")
    monkeypatch.setenv("UAUTH_ID_TOKEN_TTL", "800")
    monkeypatch.setenv("UAUTH_REQUIRE_PKCE", "true")
    app = create_app({"UAUTH_STORAGE": "memory://", "UAUTH_ID_TOKEN_TTL": 1000},
                     instance_path=tmp_path)
    assert app.config["UAUTH_CODE_TTL"] == 30, "instance file beats defaults"
    assert app.config["UAUTH_ACCESS_TOKEN_TTL"] == 700, "environment beats the file"
    assert app.config["UAUTH_ID_TOKEN_TTL"] == 1000, "the mapping beats the environment"
    assert app.config["UAUTH_REQUIRE_PKCE"] is True
    assert app.config["UAUTH_REFRESH_TOKEN_TTL"] == DEFAULTS["UAUTH_REFRESH_TOKEN_TTL"]


def test_instance_folder_from_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("UAUTH_INSTANCE", str(tmp_path / "inst"))
    app = create_app({"UAUTH_STORAGE": "memory://"})
    assert Path(app.instance_path) == tmp_path / "inst"
    assert (tmp_path / "inst" / "secret_key").stat().st_mode & 0o777 == 0o600


def test_default_storage_is_sqlite_in_the_instance_folder(tmp_path: Path) -> None:
    app = create_app(instance_path=tmp_path)
    assert app.config["UAUTH_STORAGE"] == f"sqlite:///{tmp_path}/uauth.db"
    with app.app_context():
        get_state().store.ping()
    assert (tmp_path / "uauth.db").exists()


def test_every_setting_is_documented_once() -> None:
    names = [s.name for s in SETTINGS]
    assert len(names) == len(set(names))
    assert all(s.doc and s.name.startswith("UAUTH_") for s in SETTINGS)


def test_committed_example_config_matches_the_settings() -> None:
    committed = Path(__file__).parent.parent / "docs" / "config.example.py"
    assert committed.read_text() == example_config(), "regenerate: uauth config-example"


def test_the_configuration_page_documents_every_setting() -> None:
    from uauth.core.settings import markdown_table

    page = (Path(__file__).parent.parent / "docs" / "configuration.md").read_text()
    assert markdown_table() in page, (
        "docs/configuration.md's table is stale: paste `uauth config-doc`")


def test_an_unknown_setting_is_refused_with_the_nearest_name(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("UAUTH_ACESS_TOKEN_TTL", "60")
    with pytest.raises(ConfigError) as caught:
        create_app({"UAUTH_STORAGE": "memory://"}, instance_path=tmp_path)
    assert str(caught.value) == ("UAUTH_ACESS_TOKEN_TTL is not a uauth setting; did you mean "
                                 "UAUTH_ACCESS_TOKEN_TTL?")


def test_the_variables_ci_exports_are_not_taken_for_settings(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ci_run = (Path(__file__).parent.parent / ".ci" / "run").read_text()
    exported = re.findall(r"^export (UAUTH_[A-Z_]+)=", ci_run, flags=re.MULTILINE)
    assert "UAUTH_REQUIRE_POSTGRES" in exported
    for name in exported:
        monkeypatch.setenv(name, "1")
    config = create_app({"UAUTH_STORAGE": "memory://"}, instance_path=tmp_path).config
    assert not set(exported) & set(config)


def test_default_instance_folder_is_instance_under_the_working_directory(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("UAUTH_INSTANCE", raising=False)
    app = create_app({"UAUTH_STORAGE": "memory://"})
    assert Path(app.instance_path) == tmp_path / "instance"
    assert (tmp_path / "instance" / "secret_key").exists()


def test_settings_has_one_typed_field_per_key_and_is_frozen(tmp_path: Path) -> None:
    assert {field_key(item.name) for item in fields(Settings)} == set(DEFAULTS)
    app = create_app({"UAUTH_STORAGE": "memory://", "UAUTH_CODE_TTL": "90"},
                     instance_path=tmp_path)
    with app.app_context():
        settings = get_state().settings
    assert settings.code_ttl == 90 and settings.signing_algs == ("RS256",)
    with pytest.raises(FrozenInstanceError):
        settings.code_ttl = 1  # type: ignore[misc]


def test_validating_custom_scopes_leaves_the_configured_scopes_alone(tmp_path: Path) -> None:
    app = create_app({"UAUTH_STORAGE": "memory://",
                      "UAUTH_CUSTOM_SCOPES": {"teams": {"claims": ["teams"]}}},
                     instance_path=tmp_path)
    assert "teams" not in app.config["UAUTH_SCOPES"], "no validator grows another setting"
    with app.app_context():
        assert get_state().settings.known_scopes[-1] == "teams"
