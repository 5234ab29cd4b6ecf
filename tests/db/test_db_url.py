"""DMP_DB_URL and DMP_SINK: parsed once, the password never shown, db combined with the other sinks."""

from __future__ import annotations

from pathlib import Path

import pytest

from flows.engine.config import Settings
from flows.engine.db.url import DbUrl
from flows.engine.errors import ConfigError


def test_the_default_database_is_a_sqlite_file_in_the_outputs_directory():
    assert str(Settings.from_env({}).db_url) == "sqlite:///out/dmp.sqlite"
    assert Settings.from_env({"DMP_OUT_DIR": "/srv/dmp"}).db_url.path == "/srv/dmp/dmp.sqlite"
    assert Settings.from_env({}).sinks == ("files", "db")


@pytest.mark.parametrize(("text", "dialect", "path"), [
    ("sqlite:///results/dmp.sqlite", "sqlite", "results/dmp.sqlite"),
    ("sqlite:////var/lib/dmp/dmp.sqlite", "sqlite", "/var/lib/dmp/dmp.sqlite"),
    ("postgresql://dmp:pw@db.example.com:5432/dmp", "postgresql", None),
    ("postgres://db.example.com/dmp?sslmode=require", "postgresql", None),
])
def test_urls_of_both_dialects(text, dialect, path):
    url = DbUrl.parse(text)
    assert (url.dialect, url.path, url.problem) == (dialect, path, None)


@pytest.mark.parametrize(("text", "problem"), [
    ("mysql://root:pw@db/dmp", "expected sqlite:///path/to/file.sqlite or postgresql://"),
    ("sqlite://host/dmp.sqlite", "a SQLite URL is sqlite:/// and a file path"),
    ("sqlite:///:memory:", "so not :memory:"),
    ("postgresql://dmp:pw@db:5432/", "a PostgreSQL URL names its database"),
    ("postgresql://dmp:pw@db:99999/dmp", "Port out of range"),
])
def test_bad_urls_say_what_is_expected_without_the_password(text, problem):
    url = DbUrl.parse(text)
    assert problem in url.problem and ":pw@" not in url.problem


def test_the_password_is_masked_in_repr_str_and_driver_messages():
    url = DbUrl.parse("postgresql://dmp:p%40ss@db.example.com:5432/dmp")
    assert repr(url) == "DbUrl('postgresql://dmp:***@db.example.com:5432/dmp')"
    assert str(url) == "postgresql://dmp:***@db.example.com:5432/dmp"
    assert url.hide('password "p@ss" or p%40ss rejected') == 'password "***" or *** rejected'


def test_the_password_never_shows_in_settings_or_their_errors():
    settings = Settings.from_env({"DMP_DB_URL": "postgresql://dmp:hunter2@db:5432/dmp"})
    assert "hunter2" not in repr(settings) and "hunter2" not in str(settings.db_url)
    with pytest.raises(ConfigError) as error:
        Settings.from_env({"DMP_DB_URL": "postgresql://dmp:hunter2@db:99999/dmp"})
    assert str(error.value).startswith("DMP_DB_URL: expected") and "hunter2" not in str(error.value)


@pytest.mark.parametrize(("sinks", "kinds"), [("files", ("files",)), ("kafka,db", ("kafka", "db")),
                                             ("files,kafka,db", ("files", "kafka", "db")), ("db", ("db",))])
def test_db_combines_with_the_other_sinks(sinks, kinds):
    assert Settings.from_env({"DMP_SINK": sinks, "DMP_KAFKA_BROKERS": "k:9092"}).sinks == kinds


@pytest.mark.parametrize(("env", "named"), [({"DMP_DB_RETRY": "0"}, "DMP_DB_RETRY"),
                                            ({"DMP_DB_RETRY": "soon"}, "DMP_DB_RETRY"),
                                            ({"DMP_SINK": "files,sql"}, "DMP_SINK")])
def test_bad_database_settings_name_the_variable(env, named):
    with pytest.raises(ConfigError, match=named):
        Settings.from_env(env)


def test_resolving_keeps_a_url_without_the_placeholder():
    url = DbUrl.parse("sqlite:///elsewhere.sqlite")
    assert url.resolve(Path("/out")) is url
