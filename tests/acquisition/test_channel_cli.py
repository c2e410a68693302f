"""`siyu channel …` against a database holding one corp with a channel code."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker
from typer.testing import CliRunner

from siyu.acquisition.models import Channel
from siyu.cli import app
from tests.factories import make_corp

runner = CliRunner()


@pytest.fixture
def channel_id(db: sessionmaker[Session]) -> int:
    corp_id = make_corp(db).corp_id
    with db.begin() as s:
        channel = Channel(
            corp_id=corp_id,
            name="门店码",
            state="ch_cli_test",
            userids=["zhangsan"],
            live_userids=["zhangsan"],
            config_id="cfg-cli",
            qr_url="http://emulator.invalid/scan/contact/cfg-cli",
        )
        s.add(channel)
        s.flush()
        return channel.id


def test_list_shows_the_code(channel_id: int) -> None:
    result = runner.invoke(app, ["channel", "list"])
    assert result.exit_code == 0, result.output
    assert "门店码" in result.output and "zhangsan" in result.output


@pytest.mark.parametrize(("suffix", "magic"), [(".png", b"\x89PNG"), (".svg", b"<svg")])
def test_qr_writes_the_image(channel_id: int, tmp_path: Path, suffix: str, magic: bytes) -> None:
    out = tmp_path / f"code{suffix}"
    result = runner.invoke(app, ["channel", "qr", str(channel_id), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert out.read_bytes().startswith(magic)


def test_qr_refuses_a_missing_channel_and_a_bad_extension(channel_id: int, tmp_path: Path) -> None:
    missing = runner.invoke(app, ["channel", "qr", str(channel_id + 999), "--out", str(tmp_path / "x.png")])
    assert missing.exit_code == 1 and "no channel" in missing.output
    bad = runner.invoke(app, ["channel", "qr", str(channel_id), "--out", str(tmp_path / "x.gif")])
    assert bad.exit_code == 2 and ".png or .svg" in bad.output


def test_funnel_prints_and_writes_csv(channel_id: int, tmp_path: Path) -> None:
    out = tmp_path / "funnel.csv"
    result = runner.invoke(app, ["channel", "funnel", "--csv", str(out)])
    assert result.exit_code == 0, result.output
    assert "门店码" in result.output
    assert out.read_text(encoding="utf-8").startswith("\ufeff")
    bad = runner.invoke(app, ["channel", "funnel", "--start", "2026-13-01"])
    assert bad.exit_code == 1 and "error" in bad.output
