"""DIGEST_PROFILES: the profiles file read and checked, bad input one line naming file/line/key."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from arxiv_digest.errors import ConfigError
from arxiv_digest.settings import digest_config_hash, load_settings
from tasks.library import LibraryError
from tasks.preflight import check_profiles
from tasks.profiles import (
    Profile,
    artifact_key,
    fetch_settings,
    load_profiles,
    output_dir,
    profile_config_hash,
    profile_settings,
)
from tests.conftest import TEST_DATA
from tests.test_cli import assert_one_line_error, run_cli
from tests.test_faults_input import untouched

LIBRARY = TEST_DATA / "libraries" / "medical.bib"

GOOD = """\
# Two readers of one fetch.
[[profile]]
name = "medical"
title = "Medical Imaging"
categories = ["cs.CV", "eess.IV"]
include = ["segmentation", "  lesion   detection "]
exclude = ["survey"]
authors = ["Kaiming He"]
interest = "medical image analysis"
library = "libs/medical.bib"
top_n = 5
language = "en"
notify = ["MEDICAL_APPRISE_URL"]

[[profile]]
name = "everything"
"""


def write_profiles(work: Path, text: str, monkeypatch: pytest.MonkeyPatch) -> Path:
    (work / "libs").mkdir(exist_ok=True)
    (work / "libs" / "medical.bib").write_bytes(LIBRARY.read_bytes())
    path = work / "profiles.toml"
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    monkeypatch.setenv("DIGEST_PROFILES", str(path))
    return path


def test_without_the_setting_one_default_profile_is_made_of_the_settings(settings_env, monkeypatch):
    monkeypatch.setenv("DIGEST_TOPIC", "Robotics")
    monkeypatch.setenv("DIGEST_CATEGORIES", "cs.RO")
    monkeypatch.setenv("DIGEST_TOP_N", "7")
    settings = load_settings()
    assert load_profiles(settings) == (
        Profile(name="default", title="Robotics", categories=("cs.RO",), top_n=7, language="zh"),
    )
    [default] = load_profiles(settings)
    assert not default.uses_features
    # Everything as before profiles: the fetch, the paths, the digest's config hash.
    assert fetch_settings(settings, [default]) is settings
    assert output_dir(settings, "default") == Path(settings.output_dir)
    assert artifact_key("default", "2026-06-30") == "digest-2026-06-30"
    assert profile_config_hash(settings, default, "p") == digest_config_hash(settings, "p")


def test_an_empty_setting_means_no_profiles_file(settings_env, monkeypatch):
    monkeypatch.setenv("DIGEST_PROFILES", "  ")
    assert [p.name for p in load_profiles(load_settings())] == ["default"]


def test_profiles_are_read_in_order_with_settings_filling_missing_keys(settings_env, monkeypatch):
    monkeypatch.setenv("DIGEST_TOPIC", "Computer Vision")
    write_profiles(settings_env, GOOD, monkeypatch)
    medical, everything = load_profiles(load_settings())
    assert medical == Profile(
        name="medical",
        title="Medical Imaging",
        categories=("cs.CV", "eess.IV"),
        include=("segmentation", "lesion detection"),
        exclude=("survey",),
        authors=("Kaiming He",),
        interest="medical image analysis",
        library=(settings_env / "libs" / "medical.bib").resolve(),  # beside the TOML file
        top_n=5,
        language="en",
        notify=("MEDICAL_APPRISE_URL",),
    )
    assert everything == Profile(
        name="everything", title="Computer Vision", categories=("cs.CV",), top_n=10
    )
    assert medical.uses_features and not everything.uses_features


def test_one_fetch_serves_the_union_of_categories_and_each_profile_its_own_settings(
    settings_env, monkeypatch
):
    write_profiles(settings_env, GOOD, monkeypatch)
    settings = load_settings()
    medical, everything = load_profiles(settings)
    assert fetch_settings(settings, [medical, everything]).categories == ["cs.CV", "eess.IV"]
    assert fetch_settings(settings, [everything]) is settings
    own = profile_settings(settings, medical)
    assert (own.topic, own.categories, own.interest, own.top_n, own.language) == (
        "Medical Imaging",
        ["cs.CV", "eess.IV"],
        "medical image analysis",
        5,
        "en",
    )
    # With DIGEST_PROFILES every profile has its own folder and artifact key.
    assert output_dir(settings, "medical") == Path(settings.output_dir) / "medical"
    assert output_dir(settings, "default") == Path(settings.output_dir) / "default"
    assert artifact_key("my_cv", "2026-06-30") == "digest-my-cv-2026-06-30"


def test_the_digest_config_hash_changes_with_the_library_but_not_without_profiles(
    settings_env, monkeypatch
):
    write_profiles(settings_env, GOOD, monkeypatch)
    settings = load_settings()
    medical, everything = load_profiles(settings)
    first = profile_config_hash(settings, medical, "p")
    assert first != profile_config_hash(settings, everything, "p")
    with (settings_env / "libs" / "medical.bib").open("a") as bib:
        bib.write("\n@misc{new, title = {Another paper}}\n")
    assert profile_config_hash(settings, medical, "p") != first
    # DIGEST_TOPIC is what the shared analyses are written for: part of every profile's hash.
    monkeypatch.setenv("DIGEST_TOPIC", "Robotics")
    assert profile_config_hash(load_settings(), everything, "p") != profile_config_hash(
        settings, everything, "p"
    )


# Each bad file: what it says, and what the one error line must name (file, line, key, why).
BAD = [
    (
        "malformed TOML",
        '[[profile]]\nname = "a"\ntitle = "unclosed\n',
        ["line 3", "not valid TOML"],
    ),
    (
        "unknown key",
        '[[profile]]\nname = "a"\n\ncolour = "blue"\n',
        ["line 4:", "'colour'", "unknown key", "known: name, title"],
    ),
    (
        "duplicate names",
        '[[profile]]\nname = "a"\n[[profile]]\nname = "b"\n[[profile]]\n  name = "a"\n',
        ["line 6:", "'name'", "'a' is declared twice", "profiles 1 and 3"],
    ),
    (
        "unknown category",
        '[[profile]]\nname = "a"\ncategories = ["cs.CV", "cs.XY"]\n',
        ["line 3:", "'categories'", "unknown arXiv category: cs.XY"],
    ),
    (
        "missing library",
        '[[profile]]\nname = "a"\nlibrary = "nowhere.bib"\n',
        ["line 3:", "'library'", "'nowhere.bib'", "does not exist"],
    ),
    ("missing name", '[[profile]]\ntitle = "T"\n', ["line 1:", "'name'", "missing"]),
    ("bad slug", '[[profile]]\nname = "My Profile"\n', ["line 2:", "'name'", "not a slug"]),
    (
        "URL in notify",
        '[[profile]]\nname = "a"\nnotify = ["tgram://bottoken/ChatID"]\n',
        ["line 3:", "'notify'", "entry 1 is not an environment variable name"],
    ),
    ("wrong type", '[[profile]]\nname = "a"\ntop_n = "ten"\n', ["line 3:", "'top_n'"]),
    ("bool is no number", '[[profile]]\nname = "a"\ntop_n = true\n', ["line 3:", "'top_n'"]),
    ("negative top_n", '[[profile]]\nname = "a"\ntop_n = -1\n', ["line 3:", "'top_n'"]),
    ("bad language", '[[profile]]\nname = "a"\nlanguage = "fr"\n', ["line 3:", "'language'"]),
    ("empty keyword", '[[profile]]\nname = "a"\ninclude = ["x", " "]\n', ["'include'", "empty"]),
    ("top-level key", 'top_n = 3\n[[profile]]\nname = "a"\n', ["unknown top-level key 'top_n'"]),
    ("no profile", "# nothing yet\n", ["no [[profile]] table"]),
    ("profile not a list", '[profile]\nname = "a"\n', ["no [[profile]] table"]),
]


@pytest.mark.parametrize(("text", "needles"), [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_bad_profiles_file_is_one_line_naming_file_line_and_key(
    settings_env, monkeypatch, text, needles
):
    path = write_profiles(settings_env, text, monkeypatch)
    with pytest.raises(ConfigError) as caught:
        load_profiles(load_settings())
    message = str(caught.value)
    assert "\n" not in message
    assert "bottoken" not in message  # a URL put in `notify` by mistake is not echoed
    assert f"DIGEST_PROFILES={str(path)!r}" in message
    for needle in needles:
        assert needle in message


def test_unreadable_profiles_file_names_the_setting(settings_env, monkeypatch):
    monkeypatch.setenv("DIGEST_PROFILES", str(settings_env / "missing.toml"))
    with pytest.raises(ConfigError, match=r"DIGEST_PROFILES=.*missing.toml.*no such file"):
        load_profiles(load_settings())


def test_preflight_reads_each_library_and_names_a_malformed_one(settings_env, monkeypatch):
    write_profiles(
        settings_env, '[[profile]]\nname = "a"\nlibrary = "libs/broken.bib"\n', monkeypatch
    )
    (settings_env / "libs" / "broken.bib").write_text(
        "@misc{ok, title = {Fine}}\n\n@article{broken,\n  title = {Unclosed\n"
    )
    with pytest.raises(LibraryError, match=r"broken\.bib: line 3: not valid BibTeX"):
        check_profiles(load_settings())


def test_preflight_requires_each_notify_variable_and_never_shows_its_value(
    settings_env, monkeypatch
):
    write_profiles(settings_env, GOOD, monkeypatch)
    with pytest.raises(
        ConfigError, match="'medical': notify names MEDICAL_APPRISE_URL, which is not"
    ):
        check_profiles(load_settings())
    monkeypatch.setenv("MEDICAL_APPRISE_URL", "tgram://secret-token/123")
    check_profiles(load_settings())  # set: fine


@pytest.mark.usefixtures("prefect_server")
@pytest.mark.parametrize(
    "command",
    [["run", "--date", "2026-06-30"], ["backfill", "--start", "2026-06-30", "--end", "2026-06-30"]],
)
def test_cli_stops_on_a_bad_profiles_file_before_anything_is_written(
    settings_env, capsys, monkeypatch, command
):
    monkeypatch.setenv("DIGEST_OUTPUT_DIR", str(settings_env / "output"))
    write_profiles(settings_env, '[[profile]]\nname = "a"\ncategories = ["cs.CVV"]\n', monkeypatch)
    code, _, err = run_cli(capsys, *command)
    assert_one_line_error(code, err, "profiles.toml", "line 3", "'categories'", "cs.CVV")
    assert untouched(settings_env)
