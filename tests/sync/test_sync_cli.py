"""`siyu sync` through typer's CliRunner: exit codes and messages, and a real sync against the emulator."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import typer
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from typer.testing import CliRunner

from siyu.contacts.models import Customer
from siyu.sync.cli import sync
from siyu.wecom.emulator.server import RunningEmulator, start_emulator
from tests.factories import make_corp
from tests.sync.test_sync_support import corp_for

runner = CliRunner()


def _app() -> typer.Typer:
    """The command mounted the way siyu.cli mounts it."""
    app = typer.Typer()
    app.command()(sync)

    @app.callback()
    def _root() -> None:
        """siyu"""

    return app


@pytest.fixture
def emu() -> Iterator[RunningEmulator]:
    with start_emulator(employees=6, customers=120, seed=3) as running:
        yield running


def test_sync_mirrors_the_only_corp_and_prints_a_summary(db: sessionmaker[Session], emu: RunningEmulator) -> None:
    # given one corp
    corp_for(db, emu)
    # when `siyu sync` runs without --corp
    result = runner.invoke(_app(), ["sync"])
    # then it syncs that corp and prints the table
    assert result.exit_code == 0, result.output
    assert "customers" in result.stdout and "group_members" in result.stdout
    with db() as s:
        assert len(s.scalars(select(Customer.id)).all()) == len(emu.state.customers)


@pytest.mark.parametrize("ref", ["wecom", "numeric"])
def test_corp_may_be_named_by_corpid_or_id(db: sessionmaker[Session], emu: RunningEmulator, ref: str) -> None:
    # given two corps, one of them the emulator
    corp_id = corp_for(db, emu)
    make_corp(db, wecom_corpid="wwother000000000001")
    # when --corp names it
    value = emu.corp.corpid if ref == "wecom" else str(corp_id)
    result = runner.invoke(_app(), ["sync", "--corp", value, "--only", "tags"])
    # then that corp is synced
    assert result.exit_code == 0, result.output
    assert "tag_groups" in result.stdout


@pytest.mark.parametrize(
    ("corps", "args", "message"),
    [
        (0, ["sync"], "no corp is connected"),
        (2, ["sync"], "several corps are connected"),
        (1, ["sync", "--corp", "wwnope"], "no corp matches --corp 'wwnope'"),
        (1, ["sync", "--only", "everything"], "--only must be one of employees, tags, customers, groups"),
    ],
)
def test_bad_input_exits_2_with_a_message(db: sessionmaker[Session], corps: int, args: list[str], message: str) -> None:
    # given some corps
    for i in range(corps):
        make_corp(db, wecom_corpid=f"ww{i:016d}")
    # when the command gets input it cannot act on
    result = runner.invoke(_app(), args)
    # then it exits 2 and says why
    assert result.exit_code == 2
    assert message in " ".join(result.output.split())


def test_a_wecom_failure_exits_1_and_says_how_to_resume(db: sessionmaker[Session], emu: RunningEmulator) -> None:
    # given WeCom refusing the customer listing
    corp_for(db, emu)
    emu.inject_error("externalcontact/batch/get_by_user", 48002, times=5)
    # when syncing
    result = runner.invoke(_app(), ["sync"])
    # then the exit code is 1 and the message points at resuming
    assert result.exit_code == 1
    assert "run `siyu sync` again to resume" in " ".join(result.output.split()).lower()
