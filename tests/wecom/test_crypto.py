"""WXBizMsgCrypt against the published vectors (reference §1.6), wechatpy, and broken input.

The vectors pin the exact bytes; the wechatpy round trips catch anything the vectors happen
not to exercise (unicode, empty messages, a full 32-byte pad block).
"""

from __future__ import annotations

import base64
import struct
from collections.abc import Callable
from dataclasses import dataclass
from xml.etree import ElementTree

import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from hypothesis import example, given, settings
from hypothesis import strategies as st

from siyu.wecom.callbacks import parse_envelope
from siyu.wecom.crypto import MsgCrypt, decode_aes_key, envelope_xml, reply_xml
from siyu.wecom.errors import CryptoError, CryptoErrorCode

try:  # wechatpy 2.x
    from wechatpy.work.crypto import WeChatCrypto
except ImportError:  # wechatpy 1.8 calls the same class "enterprise"
    from wechatpy.enterprise.crypto import WeChatCrypto
from wechatpy.exceptions import InvalidSignatureException


@dataclass(frozen=True)
class Config:
    token: str
    aes_key: str
    receive_id: str

    def ours(self) -> MsgCrypt:
        return MsgCrypt(self.token, self.aes_key, self.receive_id)

    def wechatpy(self) -> WeChatCrypto:
        return WeChatCrypto(self.token, self.aes_key, self.receive_id)


KAT_A = Config("hJqcu3uJ9Tn2gXPmxx2w9kkCkCE2EPYo", "6qkdMrq68nTKduznJYO1A37W2oEgpkMUvkttRToqhUt", "ww1436e0e65a779aee")
KAT_B = Config("123456", "kWxPEV2UEDyxWpmPdKC3F4dgPDmOvfKX1HGnEUDS1aR", "wx49f0ab532d5d035a")

A1_ECHOSTR = "fsi1xnbH4yQh0+PJxcOdhhK6TDXkjMyhEPA7xB2TGz6b+g7xyAbEkRxN/3cNXW9qdqjnoVzEtpbhnFyq6SVHyA=="
A2_ENCRYPT = (
    "Kl7kjoSf6DMD1zh7rtrHjFaDapSCkaOnwu3bqLc5tAybhhMl9pFeK8NslNPVdMwmBQTNoW4mY7AIjeLvEl3NyeTkAgGzBhzTtRLNshw2AEew"
    "+kkYcD+Fq72Kt00fT0WnN87hGrW8SqGc+NcT3mu87Ha3dz1pSDi6GaUA6A0sqfde0VJPQbZ9U+3JWcoD4Z5jaU0y9GSh010wsHF8KZD24Y"
    "hmZH4ch4Ka7ilEbjbfvhKkNL65HHL0J6EYJIZUC2pFrdkJ7MhmEbU2qARR4iQHE7wy24qy0cRX3Mfp6iELcDNfSsPGjUQVDGxQDCWjayJO"
    "pcwocugux082f49HKYg84EpHSGXAyh+/oxwaWbvL6aSDPOYuPDGOCI8jmnKiypE+"
)
A2_BODY = (
    f"<xml><ToUserName><![CDATA[ww1436e0e65a779aee]]></ToUserName>\n<Encrypt><![CDATA[{A2_ENCRYPT}]]></Encrypt>\n"
    "<AgentID><![CDATA[1000002]]></AgentID>\n</xml>"
)
A2_PLAINTEXT = (
    "<xml><ToUserName>ww1436e0e65a779aee</ToUserName><FromUserName>ChenJiaShun</FromUserName>"
    "<CreateTime>1476422779</CreateTime><MsgType>text</MsgType><Content>你好</Content>"
    "<MsgId>1456453720</MsgId><AgentID>1000002</AgentID></xml>"
)
DERIVED_ENCRYPT = (
    "/K4xJYsBwQssQzE/v2nbvIeXv4RSPpm4QbLqQSJqdvTVzKdF5zyFpDqi7SqZlsgsfUlux8Dk7Jys7Ury6tmjaV7Ak7EN8Fjekv0jUn4RYg"
    "N674vkPCc7yKF6FR0b4Vk+qgr+pFzWinL/dQMypCC7C1Q5hPHR2YpGczDGP23egDaV+a9l+1F0nloF2FdIGDCDJkW6PA6Ru++xQfQf3QP3"
    "ZbMEe7qI2G0aSSFw5CQUZm9tUd7mInaxLLkgko8Aw08RmSWw97bU3XhkVtzZOIZsmTxTmNFpaRAESl2hTWtrz5av2a7kQfSt/hZos75Fjc"
    "WUE/7jB7ApcbsBQxCrUds0wSLuTl4PGBMpdFQn1gVCerDw+rJhy7tZikFtyLimEaCc"
)
B1_ECHOSTR = "4ByGGj+sVCYcvGeQYhaKIk1o0pQRNbRjxybjTGblXrBaXlTXeOo1+bXFXDQQb1o6co6Yh9Bv41n7hOchLF6p+Q=="
B2_REPLY = (
    "<xml>\n<MsgType><![CDATA[text]]></MsgType>\n<Content><![CDATA[test]]></Content>\n"
    "<FromUserName><![CDATA[wx49f0ab532d5d035a]]></FromUserName>\n<ToUserName><![CDATA[messense]]></ToUserName>\n"
    "<AgentID>1</AgentID>\n<CreateTime>1411525903</CreateTime>\n</xml>"
)
B2_EXPECTED = (
    "<xml>\n<Encrypt><![CDATA[9s4gMv99m88kKTh/H8IdkOiMg6bisoy3ypwy9H4hvSPe9nsGaqyw5hhSjdYbcrKk+j3nba4HMOTzHrluLBYqxgNc"
    "BqGsL8GqxlhZgURnAtObvesEl5nZ+uBE8bviY0LWke8Zy9V/QYKxNV2FqllNXcfmstttyIkMKCCmVbCFM2JTF5wY0nFhHZSjPUL2Q1qvSUCU"
    "ld+/WIXrx0oyKQmpB6o8NRrrNrsDf03oxI1p9FxUgMnwKKZeOA/uu+2IEvEBtb7muXsVbwbgX05UPPJvFurDXafG0RQyPR+mf1nDnAtQmmNO"
    "uiR5MIkdQ39xn1vWwi1O5oazPoQJz0nTYjxxEE8kv3kFxtAGVRe3ypD3WeK2XeFYFMNMpatF9XiKzHo3]]></Encrypt>\n"
    "<MsgSignature><![CDATA[407518b7649e86ef23978113f92d27afa9296533]]></MsgSignature>\n"
    "<TimeStamp>1411525903</TimeStamp>\n<Nonce><![CDATA[461056294]]></Nonce>\n</xml>"
)
B3_ENCRYPT = (
    "RgqEoJj5A4EMYlLvWO1F86ioRjZfaex/gePD0gOXTxpsq5Yj4GNglrBb8I2BAJVODGajiFnXBu7mCPatfjsu6IHCrsTyeDXzF6Bv283dGymz"
    "xh6ydJRvZsryDyZbLTE7rhnus50qGPMfp2wASFlzEgMW9z1ef/RD8XzaFYgm7iTdaXpXaG4+BiYyolBug/gYNx410cvkKR2/nPwBiT+P4hIi"
    "OAQqGp/TywZBtDh1yCF2KOd0gpiMZ5jSw3e29mTvmUHzkVQiMS6td7vXUaWOMZnYZlF3So2SjHnwh4jYFxdgpkHHqIrH/54SNdshoQgWYEvc"
    "cTKe7FS709/5t6NMxuGhcUGAPOQipvWTT4dShyqio7mlsl5noTrb++x6En749zCpQVhDpbV6GDnTbcX2e8K9QaNWHp91eBdCRxthuL0="
)
B3_BODY = (
    f"<xml><ToUserName><![CDATA[wx49f0ab532d5d035a]]></ToUserName>\n<Encrypt><![CDATA[{B3_ENCRYPT}]]></Encrypt>\n"
    "<AgentID><![CDATA[1]]></AgentID>\n</xml>"
)
B3_PLAINTEXT = (
    "<xml><ToUserName><![CDATA[wx49f0ab532d5d035a]]></ToUserName>\n<FromUserName><![CDATA[messense]]></FromUserName>\n"
    "<CreateTime>1411525903</CreateTime>\n<MsgType><![CDATA[text]]></MsgType>\n<Content><![CDATA[test]]></Content>\n"
    "<MsgId>4363689963896700987</MsgId>\n<AgentID>1</AgentID>\n</xml>"
)


def raw_plaintext(config: Config, encrypt: str) -> bytes:
    """AES-CBC decryption with no unpadding, written apart from crypto.py to inspect pad and prefix."""
    key = base64.b64decode(config.aes_key + "=")
    decryptor = Cipher(algorithms.AES(key), modes.CBC(key[:16])).decryptor()
    return decryptor.update(base64.b64decode(encrypt)) + decryptor.finalize()


def raw_encrypt(config: Config, plaintext: bytes) -> str:
    """AES-CBC encryption of exactly these bytes, to build malformed buffers crypto.py never would."""
    key = base64.b64decode(config.aes_key + "=")
    encryptor = Cipher(algorithms.AES(key), modes.CBC(key[:16])).encryptor()
    return base64.b64encode(encryptor.update(plaintext) + encryptor.finalize()).decode()


def reply_fields(reply: str) -> dict[str, str]:
    """The fields of a reply wechatpy built (trusted test data, so the stdlib parser is fine)."""
    return {child.tag: child.text or "" for child in ElementTree.fromstring(reply)}


# --- known answers ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("config", "msg_signature", "timestamp", "nonce", "echostr", "expected"),
    [
        pytest.param(
            KAT_A, "012bc692d0a58dd4b10f8dfe5c4ac00ae211ebeb", "1476416373", "47744683", A1_ECHOSTR,
            "1288432023552776189", id="A1",
        ),
        pytest.param(
            KAT_B, "dd6b9c95b495b3f7e2901bfbc76c664930ffdb96", "1411443780", "437374425", B1_ECHOSTR,
            "5927782489442352469", id="B1",
        ),
    ],
)  # fmt: skip
def test_verify_url_known_answer(
    config: Config, msg_signature: str, timestamp: str, nonce: str, echostr: str, expected: str
) -> None:
    assert config.ours().verify_url(msg_signature, timestamp, nonce, echostr) == expected


def test_verify_url_rejects_the_b1_vector_with_another_nonce() -> None:
    # given B1 with the nonce off by one, as wechatpy's negative test does
    crypt = KAT_B.ours()
    # when / then
    with pytest.raises(CryptoError) as caught:
        crypt.verify_url("dd6b9c95b495b3f7e2901bfbc76c664930ffdb96", "1411443780", "437374424", B1_ECHOSTR)
    assert caught.value.code == CryptoErrorCode.VALIDATE_SIGNATURE


@pytest.mark.parametrize(
    ("config", "msg_signature", "timestamp", "nonce", "body", "expected"),
    [
        pytest.param(
            KAT_A, "0c3914025cb4b4d68103f6bfc8db550f79dcf48e", "1476422779", "1597212914", A2_BODY, A2_PLAINTEXT,
            id="A2",
        ),
        pytest.param(
            KAT_B, "74d92dfeb87ba7c714f89d98870ae5eb62dff26d", "1411525903", "461056294", B3_BODY, B3_PLAINTEXT,
            id="B3-pad-1",
        ),
    ],
)  # fmt: skip
def test_decrypt_envelope_known_answer(
    config: Config, msg_signature: str, timestamp: str, nonce: str, body: str, expected: str
) -> None:
    # given
    envelope = parse_envelope(body.encode())
    # when
    plaintext = config.ours().decrypt_envelope(msg_signature, timestamp, nonce, envelope.encrypt)
    # then
    assert envelope.to_user_name == config.receive_id
    assert plaintext.decode() == expected


@pytest.mark.parametrize(
    ("config", "msg", "random16", "expected"),
    [
        pytest.param(KAT_A, "1288432023552776189", b"8908d0ff052afda0", A1_ECHOSTR, id="A1"),
        pytest.param(KAT_A, A2_PLAINTEXT, b"694ce5a83ae07fe3", A2_ENCRYPT, id="A2"),
        pytest.param(KAT_A, A2_PLAINTEXT, b"1234567890123456", DERIVED_ENCRYPT, id="derived"),
    ],
)
def test_encrypt_known_answer(config: Config, msg: str, random16: bytes, expected: str) -> None:
    assert config.ours().encrypt(msg, nonce_bytes=random16) == expected


def test_seal_derived_vector_signs_like_the_reference() -> None:
    # when
    env = KAT_A.ours().seal(A2_PLAINTEXT, timestamp="1476422779", nonce="1597212914", nonce_bytes=b"1234567890123456")
    # then
    assert (env.encrypt, env.msg_signature) == (DERIVED_ENCRYPT, "fabff8670719a0b942ff09f39446ce54456d412b")


def test_reply_xml_reproduces_wechatpy_b2_byte_for_byte() -> None:
    # when
    env = KAT_B.ours().seal(B2_REPLY, timestamp="1411525903", nonce="461056294", nonce_bytes=b"1234567890123456")
    # then
    assert reply_xml(env) == B2_EXPECTED


@pytest.mark.parametrize(
    ("config", "encrypt", "random16", "pad"),
    [
        pytest.param(KAT_A, A1_ECHOSTR, b"8908d0ff052afda0", 7, id="A1"),
        pytest.param(KAT_A, A2_ENCRYPT, b"694ce5a83ae07fe3", 22, id="A2"),
        pytest.param(KAT_B, B3_ENCRYPT, b"ec90b1530358d4d3", 1, id="B3"),
    ],
)
def test_vectors_cover_the_pad_sizes_they_claim(config: Config, encrypt: str, random16: bytes, pad: int) -> None:
    plaintext = raw_plaintext(config, encrypt)
    assert (plaintext[:16], plaintext[-1], plaintext[-pad:]) == (random16, pad, bytes([pad]) * pad)


# --- interop with wechatpy ---------------------------------------------------------------------


def aligned_length(config: Config) -> int:
    """The ASCII message length whose plaintext fills whole 32-byte blocks, so the pad is a full 32."""
    return -(16 + 4 + len(config.receive_id.encode())) % 32


messages = st.one_of(
    st.text(st.characters(codec="utf-8"), max_size=2000),
    st.integers(0, 61).map(lambda blocks: "a" * (aligned_length(KAT_A) + 32 * blocks)),
)


@given(msg=messages)
@example(msg="")
@example(msg="a" * aligned_length(KAT_A))
@settings(max_examples=150, deadline=None)
def test_our_seal_decrypts_in_wechatpy(msg: str) -> None:
    # given
    env = KAT_A.ours().seal(msg)
    body = envelope_xml(KAT_A.receive_id, env.encrypt, "1000002")
    # when
    decrypted = KAT_A.wechatpy().decrypt_message(body, env.msg_signature, env.timestamp, env.nonce)
    # then
    assert decrypted == msg


@given(msg=messages)
@example(msg="")
@example(msg="a" * aligned_length(KAT_A))
@settings(max_examples=150, deadline=None)
def test_wechatpy_encrypt_decrypts_in_ours(msg: str) -> None:
    # given
    reply = KAT_A.wechatpy().encrypt_message(msg, "1597212914", "1476422779")
    fields = reply_fields(reply)
    # when
    decrypted = KAT_A.ours().decrypt_envelope(
        fields["MsgSignature"], fields["TimeStamp"], fields["Nonce"], parse_envelope(reply.encode()).encrypt
    )
    # then
    assert decrypted == msg.encode()


def test_aligned_message_really_carries_a_full_pad_block() -> None:
    env = KAT_A.ours().seal("a" * aligned_length(KAT_A))
    assert raw_plaintext(KAT_A, env.encrypt)[-32:] == bytes([32]) * 32


def test_url_verification_ours_to_wechatpy() -> None:
    # given an echostr we produce, as the emulator does for the console's URL check
    env = KAT_B.ours().seal("5927782489442352469")
    # when
    echoed = KAT_B.wechatpy().check_signature(env.msg_signature, env.timestamp, env.nonce, env.encrypt)
    # then
    assert echoed == "5927782489442352469"


def test_url_verification_wechatpy_to_ours() -> None:
    # given an echostr wechatpy encrypted and signed
    fields = reply_fields(KAT_B.wechatpy().encrypt_message("1288432023552776189", "47744683", "1476416373"))
    # when
    echoed = KAT_B.ours().verify_url(fields["MsgSignature"], fields["TimeStamp"], fields["Nonce"], fields["Encrypt"])
    # then
    assert echoed == "1288432023552776189"


def test_wechatpy_refuses_our_envelope_when_the_signature_is_wrong() -> None:
    env = KAT_B.ours().seal("hello")
    with pytest.raises(InvalidSignatureException):
        KAT_B.wechatpy().check_signature("0" * 40, env.timestamp, env.nonce, env.encrypt)


# --- broken input -------------------------------------------------------------------------------


def assert_code(expected: set[CryptoErrorCode], call: Callable[..., object], *args: str) -> None:
    with pytest.raises(CryptoError) as caught:
        call(*args)
    assert caught.value.code in expected, caught.value


@pytest.mark.parametrize(
    "msg_signature",
    ["0" * 40, "012bc692d0a58dd4b10f8dfe5c4ac00ae211ebec", "", "é" * 40, "012bc692d0a58dd4b10f8dfe5c4ac00ae211ebeb0"],
    ids=["zeros", "last-digit", "empty", "non-ascii", "too-long"],
)
def test_wrong_signature_is_40001(msg_signature: str) -> None:
    crypt = KAT_A.ours()
    assert_code(
        {CryptoErrorCode.VALIDATE_SIGNATURE}, crypt.verify_url, msg_signature, "1476416373", "47744683", A1_ECHOSTR
    )


def test_signature_is_checked_before_decrypting() -> None:
    # garbage ciphertext with a wrong signature must fail on the signature, not leak a decrypt error
    crypt = KAT_A.ours()
    assert_code({CryptoErrorCode.VALIDATE_SIGNATURE}, crypt.decrypt_envelope, "0" * 40, "1", "2", "%%%")


@pytest.mark.parametrize(
    ("crypt", "override"),
    [
        pytest.param(MsgCrypt(KAT_A.token, KAT_A.aes_key, "ww0000000000000000"), None, id="configured"),
        pytest.param(KAT_A.ours(), "wwSomeOtherCorp", id="override"),
        pytest.param(KAT_A.ours(), "", id="empty"),
    ],
)
def test_wrong_receive_id_is_40005(crypt: MsgCrypt, override: str | None) -> None:
    with pytest.raises(CryptoError) as caught:
        crypt.decrypt(A2_ENCRYPT, receive_id=override)
    assert caught.value.code == CryptoErrorCode.VALIDATE_CORPID


@pytest.mark.parametrize(
    "encrypt",
    ["not base64!!", "abc", A1_ECHOSTR.replace("+", "-"), "é" * 24, A1_ECHOSTR[:-1] + "\n"],
    ids=["punctuation", "bad-length", "urlsafe-alphabet", "non-ascii", "newline"],
)
def test_bad_base64_is_40010(encrypt: str) -> None:
    assert_code({CryptoErrorCode.DECODE_BASE64}, KAT_A.ours().decrypt, encrypt)


def truncated(encrypt: str, drop: int) -> str:
    return base64.b64encode(base64.b64decode(encrypt)[:-drop]).decode()


@pytest.mark.parametrize(
    ("encrypt", "expected"),
    [
        pytest.param("", {CryptoErrorCode.DECRYPT_AES}, id="empty"),
        pytest.param(truncated(A2_ENCRYPT, 5), {CryptoErrorCode.DECRYPT_AES}, id="partial-block"),
        pytest.param(truncated(A2_ENCRYPT, 1), {CryptoErrorCode.DECRYPT_AES}, id="one-byte-short"),
        pytest.param(
            truncated(A2_ENCRYPT, 32), {CryptoErrorCode.DECRYPT_AES, CryptoErrorCode.ILLEGAL_BUFFER}, id="whole-blocks"
        ),
        pytest.param(
            truncated(A2_ENCRYPT, 256), {CryptoErrorCode.DECRYPT_AES, CryptoErrorCode.ILLEGAL_BUFFER}, id="one-block"
        ),
        pytest.param(raw_encrypt(KAT_A, b"x" * 31 + b"\x00"), {CryptoErrorCode.ILLEGAL_BUFFER}, id="pad-0"),
        pytest.param(raw_encrypt(KAT_A, b"x" * 31 + b"\x21"), {CryptoErrorCode.ILLEGAL_BUFFER}, id="pad-33"),
        pytest.param(raw_encrypt(KAT_A, b"x" * 31 + b"\xff"), {CryptoErrorCode.ILLEGAL_BUFFER}, id="pad-255"),
        pytest.param(raw_encrypt(KAT_A, b"\x20" * 32), {CryptoErrorCode.ILLEGAL_BUFFER}, id="all-padding"),
        pytest.param(
            raw_encrypt(KAT_A, b"r" * 16 + struct.pack(">I", 1000) + b"short" + b"\x07" * 7),
            {CryptoErrorCode.ILLEGAL_BUFFER},
            id="length-past-end",
        ),
        pytest.param(raw_encrypt(KAT_A, b"r" * 16 + b"\x0e" * 16), {CryptoErrorCode.ILLEGAL_BUFFER}, id="no-length"),
    ],
)
def test_truncated_or_badly_padded_ciphertext(encrypt: str, expected: set[CryptoErrorCode]) -> None:
    assert_code(expected, KAT_A.ours().decrypt, encrypt)


def test_truncated_ciphertext_never_passes_as_a_message() -> None:
    # every whole-block truncation of A2 must fail with a crypto code, never return bytes
    crypt = KAT_A.ours()
    raw = base64.b64decode(A2_ENCRYPT)
    for blocks in range(1, len(raw) // 16):
        with pytest.raises(CryptoError):
            crypt.decrypt(base64.b64encode(raw[: 16 * blocks]).decode())


def test_verify_url_echostr_that_is_not_utf8_is_a_crypto_error() -> None:
    # given a correctly signed echostr whose plaintext is not UTF-8
    crypt = KAT_A.ours()
    env = crypt.seal(b"\xff\xfe")
    # when / then
    assert_code(
        {CryptoErrorCode.ILLEGAL_BUFFER}, crypt.verify_url, env.msg_signature, env.timestamp, env.nonce, env.encrypt
    )


@pytest.mark.parametrize(
    "aes_key",
    ["", KAT_A.aes_key[:-1], KAT_A.aes_key + "A", KAT_A.aes_key + "=", "!" * 43, "é" * 43],
    ids=["empty", "42-chars", "44-chars", "with-pad", "not-base64", "non-ascii"],
)
def test_bad_encoding_aes_key_is_40004(aes_key: str) -> None:
    assert_code({CryptoErrorCode.ILLEGAL_AES_KEY}, decode_aes_key, aes_key)
    with pytest.raises(CryptoError) as caught:
        MsgCrypt(KAT_A.token, aes_key, KAT_A.receive_id)
    assert caught.value.code == CryptoErrorCode.ILLEGAL_AES_KEY
