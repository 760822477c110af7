"""Configuration precedence: flags, then TINGXIE_* variables, then defaults."""

from __future__ import annotations

import pytest

from server.config import (
    ENV_PREFIX,
    OPTIONS,
    ConfigError,
    EngineKind,
    Option,
    OptionKind,
    parse_config,
)


def test_defaults_are_loopback_and_safe() -> None:
    config = parse_config([], env={})
    assert config.host == "127.0.0.1" and config.port == 8765
    assert config.token is None and config.max_model_len == 4096


def test_environment_then_flags() -> None:
    env = {"TINGXIE_PORT": "9001", "TINGXIE_ENGINE": "fake", "TINGXIE_MAX_BATCH_SIZE": "3"}
    config = parse_config([], env=env)
    assert (config.port, config.engine, config.max_batch_size) == (9001, EngineKind.FAKE, 3)
    config = parse_config(["--port", "9002"], env=env)
    assert config.port == 9002 and config.engine is EngineKind.FAKE


def test_boolean_environment_variable() -> None:
    env = {"TINGXIE_HOST": "0.0.0.0", "TINGXIE_INSECURE_NO_AUTH": "yes"}
    assert parse_config([], env=env).insecure_no_auth is True
    with pytest.raises(ConfigError, match="TINGXIE_INSECURE_NO_AUTH"):
        parse_config([], env={"TINGXIE_INSECURE_NO_AUTH": "maybe"})


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"TINGXIE_PORT": "x"}, "TINGXIE_PORT"),
        ({"TINGXIE_ENGINE": "whisper"}, "choose from"),
        ({"TINGXIE_GPU_MEMORY_UTILIZATION": "1.5"}, "not in (0, 1]"),
        ({"TINGXIE_MAX_BATCH_SIZE": "0"}, "not >= 1"),
    ],
)
def test_bad_environment_values_name_the_variable(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace("]", r"\]")):
        parse_config([], env=env)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--port", "abc"], "argument --port: 'abc' is not a whole number"),
        (["--max-num-seqs", "0"], "argument --max-num-seqs: 0 is not >= 1"),
        (["--partial-interval-ms", "x"], "argument --partial-interval-ms: 'x' is not a number"),
        (["--gpu-memory-utilization", "2"], "2.0 is not in (0, 1]"),
        (["--renderer-threads", "two"], "argument --renderer-threads: 'two' is not a whole"),
    ],
)
def test_bad_flag_values_say_what_is_wrong(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Not argparse's "invalid _positive_int value", which names our function."""
    with pytest.raises(SystemExit):
        parse_config(argv, env={})
    err = capsys.readouterr().err
    assert message in err and "invalid" not in err


def test_bad_range_in_a_variable_is_a_config_error_not_a_traceback() -> None:
    with pytest.raises(ConfigError, match="TINGXIE_RENDERER_THREADS='0': 0 is not >= 1"):
        parse_config([], env={"TINGXIE_RENDERER_THREADS": "0"})


def test_public_host_needs_token_or_explicit_insecure() -> None:
    with pytest.raises(ConfigError, match="--token"):
        parse_config(["--host", "0.0.0.0"], env={})
    assert parse_config(["--host", "0.0.0.0", "--token", "t"], env={}).token == "t"
    assert parse_config(["--host", "0.0.0.0", "--insecure-no-auth"], env={}).token is None
    assert parse_config(["--host", "0.0.0.0"], env={"TINGXIE_TOKEN": "t"}).token == "t"


def test_partials_with_final() -> None:
    assert parse_config([], env={}).partials_with_final == 2
    assert parse_config(["--partials-with-final", "fill"], env={}).partials_with_final is None
    assert parse_config([], env={"TINGXIE_PARTIALS_WITH_FINAL": "0"}).partials_with_final == 0
    with pytest.raises(SystemExit):
        parse_config(["--partials-with-final", "-1"], env={})


def test_every_option_has_its_variable() -> None:
    assert len({option.variable for option in OPTIONS}) == len(OPTIONS)
    for option in OPTIONS:
        assert option.variable == ENV_PREFIX + option.dest.upper()
        assert option.flag.startswith("--") and option.flag.islower()
    assert {o.variable for o in OPTIONS if o.kind is OptionKind.REPEATABLE} == {
        "TINGXIE_ALLOWED_ORIGINS"
    }


@pytest.mark.parametrize(
    "option", [o for o in OPTIONS if o.kind is OptionKind.FLAG], ids=lambda o: o.flag
)
def test_every_switch_is_off_by_default_and_on_by_flag_or_variable(option: Option) -> None:
    assert getattr(parse_config([], env={}), option.dest) is False
    assert getattr(parse_config([option.flag], env={}), option.dest) is True
    assert getattr(parse_config([], env={option.variable: "Yes"}), option.dest) is True
    assert getattr(parse_config([], env={option.variable: "0"}), option.dest) is False


@pytest.mark.parametrize(
    ("argv", "env", "given"),
    [
        ([], {}, set()),
        (["--max-batch=4"], {}, {"--max-batch-size"}),  # abbreviated, with '='
        (["--partials-with-final", "2"], {}, {"--partials-with-final"}),  # the default, given
        ([], {"TINGXIE_PARTIALS_WITH_FINAL": "2"}, {"--partials-with-final"}),
        (["--port", "9000"], {"TINGXIE_MAX_BATCH_SIZE": "8"}, {"--max-batch-size"}),
    ],
)
def test_options_given_are_told_from_defaults(
    argv: list[str], env: dict[str, str], given: set[str]
) -> None:
    """Given, even at the default value: vLLM refuses what was asked for, not what differs."""
    assert parse_config(argv, env=env).transformers_only == given
