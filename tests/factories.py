"""Test data: corps with known callback credentials."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.orm import Session, sessionmaker

from siyu.corp.actions import do_create_corp
from siyu.wecom.crypto import MsgCrypt, generate_encoding_aes_key, generate_token


@dataclass(frozen=True)
class CorpFixture:
    corp_id: int
    wecom_corpid: str
    token: str
    aes_key: str
    secret: str

    def crypt(self) -> MsgCrypt:
        return MsgCrypt(self.token, self.aes_key, self.wecom_corpid)


def make_corp(
    db: sessionmaker[Session],
    *,
    wecom_corpid: str = "ww0123456789abcdef",
    secret: str = "test-secret",
    token: str | None = None,
    aes_key: str | None = None,
    api_base_url: str = "http://127.0.0.1:9",
    name: str = "测试企业",
) -> CorpFixture:
    token = token or generate_token()
    aes_key = aes_key or generate_encoding_aes_key()
    with db.begin() as session:
        corp = do_create_corp(
            session,
            name=name,
            wecom_corpid=wecom_corpid,
            contact_secret=secret,
            callback_token=token,
            callback_aes_key=aes_key,
            api_base_url=api_base_url,
        )
        corp_id = corp.corp_id
    return CorpFixture(corp_id, wecom_corpid, token, aes_key, secret)
