"""What the CLI prints for each kind of failure, and its exit code (streams.cli.errors)."""

from __future__ import annotations

import pytest
import yaml
from confluent_kafka import KafkaError, KafkaException
from pydantic import ValidationError

from streams.cli.errors import BrokerUnreachable, InputError, describe, file_error
from streams.settings import Settings


def test_bad_input_is_exit_2_in_one_line() -> None:
    for exc in (FileNotFoundError(2, "No such file or directory", "x.csv"), ValueError("x.csv:3: bad kw"),
                InputError("x.csv: no records"), KeyError("feeder")):
        f = describe(exc)
        assert f.code == 2 and len(f.lines) == 1 and f.lines[0].startswith("error: ")
    assert "x.csv" in describe(FileNotFoundError(2, "No such file or directory", "x.csv")).lines[0]


def test_unreachable_broker_is_exit_3_with_the_hint() -> None:
    f = describe(BrokerUnreachable("10.0.0.1:9092", "timed out"))
    assert f.code == 3 and len(f.lines) == 1 and "10.0.0.1:9092" in f.lines[0] and "evgrid infra up" in f.lines[0]
    k = describe(KafkaException(KafkaError(KafkaError._TRANSPORT, "Broker transport failure")))
    assert k.code == 3 and "transport" in k.lines[0].lower()


def test_an_environment_setting_is_named_by_its_variable() -> None:
    with pytest.raises(ValidationError) as err:
        Settings(partitions="many")  # type: ignore[arg-type]
    f = describe(err.value)
    assert f.code == 2 and "EVGRID_PARTITIONS" in f.lines[0]


def test_yaml_error_names_file_line_and_column() -> None:
    with pytest.raises(yaml.YAMLError) as err:
        yaml.safe_load("a: [\n")
    assert str(file_error("s.yaml", err.value)).startswith("s.yaml: line 2, column 1: ")


def test_a_bug_is_exit_1_and_points_to_the_traceback() -> None:
    f = describe(ZeroDivisionError("division by zero"))
    assert f.code == 1 and "ZeroDivisionError" in f.lines[0] and "--debug" in f.lines[1]
