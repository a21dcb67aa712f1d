"""The embedded NLU backend: understanding, rules, bad input, cache."""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import pytest

from bot.nlu.base import EntityType, Intent, NLUBackend
from bot.nlu.embedded import (
    LOW_CONFIDENCE,
    EmbeddedNLU,
    asks_who_to_contact,
    build,
    cache_key,
    create,
    emergency_kind,
    features,
    is_short_cancel,
    load_or_train,
    load_training_data,
    train,
)
from bot.nlu.normalize import normalize
from bot.nlu.registry import build_nlu
from bot.settings import Settings


@pytest.fixture(scope="module")
def nlu(shared_nlu: NLUBackend) -> EmbeddedNLU:
    assert isinstance(shared_nlu, EmbeddedNLU)
    return shared_nlu


# Representative messages (written for this test; neither training nor held-out data).
CASES = [
    ("5号楼的楼道灯不亮了 好几天了", Intent.REPORT),
    ("@回音 我要报修 厨房水管漏水", Intent.REPORT),
    ("小区门口的垃圾堆了一个星期没人收", Intent.REPORT),
    ("樓上天天半夜吵 受不了了", Intent.REPORT),
    ("楼道灯坏了找谁修", Intent.ASK_CONTACT),
    ("物业的电话是多少啊", Intent.ASK_CONTACT),
    ("停电了应该打哪个电话", Intent.ASK_CONTACT),
    ("小区外面的路灯归谁管", Intent.ASK_CONTACT),
    ("我报的那个单子处理得怎么样了", Intent.STATUS),
    ("查一下HY-20261122-0001的进度", Intent.STATUS),
    ("给我转人工吧", Intent.HUMAN),
    ("我想跟工作人员直接说", Intent.HUMAN),
    ("快来人 三楼着火了", Intent.EMERGENCY),
    ("家里一股煤气味 好浓", Intent.EMERGENCY),
    ("电梯坏在半路 我被困在里面了", Intent.EMERGENCY),
    ("楼下有人拿刀砍人", Intent.EMERGENCY),
    ("救命", Intent.EMERGENCY),
    ("卧室插座一插电器就冒火星 麻烦派个电工", Intent.REPORT),
    ("您好 在吗", Intent.GREET),
    ("早上好 回音", Intent.GREET),
    ("谢谢你 帮了大忙", Intent.THANKS),
    ("好的 多谢啦", Intent.THANKS),
    ("算了", Intent.CANCEL),
    ("取消 不报了", Intent.CANCEL),
    ("今晚谁家做饭这么香", Intent.OTHER),
    ("有人拼团买橙子吗", Intent.OTHER),
]


@pytest.mark.parametrize(("text", "intent"), CASES)
async def test_understands_representative_messages(nlu: EmbeddedNLU, text: str, intent: Intent) -> None:
    understanding = await nlu.parse(text)
    assert understanding.intent.name is intent, understanding.ranking[:3]
    assert understanding.backend == "embedded"
    assert understanding.text == normalize(text)
    assert understanding.ranking[0] == understanding.intent
    assert abs(sum(s.confidence for s in understanding.ranking) - 1.0) < 1e-6
    assert {s.name for s in understanding.ranking} == set(Intent)


async def test_entities_come_from_the_shared_extractor(nlu: EmbeddedNLU) -> None:
    understanding = await nlu.parse("三号楼2单元502漏水了 电话13812345678")
    values = {(e.type, e.value) for e in understanding.entities}
    assert {
        (EntityType.BUILDING, "3"),
        (EntityType.UNIT, "2"),
        (EntityType.ROOM, "502"),
        (EntityType.PHONE, "13812345678"),
    } <= values


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   ",
        "😀😀🔥👍",
        "\x00\x01\xff\xfe" * 50,
        bytes(range(256)).decode("latin-1"),
        "啊" * 20_000,
        "楼道灯坏了" * 4_000,
        "Ｈｅｌｌｏ　世界 mixed 樓道 العربية русский 🙂",
        "\ud800 lone surrogate",
        "@回音",
    ],
)
async def test_bad_input_never_raises(nlu: EmbeddedNLU, text: str) -> None:
    understanding = await nlu.parse(text)
    assert understanding.intent.name in set(Intent)
    assert 0.0 <= understanding.intent.confidence <= 1.0


@pytest.mark.parametrize("text", ["", "😀😀", "\x00\x00\x00", "@回音", "！？。…"])
async def test_nothing_to_understand_is_other_with_low_confidence(nlu: EmbeddedNLU, text: str) -> None:
    understanding = await nlu.parse(text)
    assert understanding.intent.name is Intent.OTHER
    assert understanding.intent.confidence == LOW_CONFIDENCE


async def test_non_string_input_does_not_raise(nlu: EmbeddedNLU) -> None:
    understanding = await nlu.parse(None)  # type: ignore[arg-type]
    assert understanding.intent.name is Intent.OTHER


async def test_health_is_none_when_trained(nlu: EmbeddedNLU) -> None:
    assert await nlu.health() is None


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("楼道里一股煤气味", "gas"),
        ("液化气罐的阀门坏了一直在漏气", "gas"),
        ("着火了", "fire"),
        ("电动车充电冒烟了", "fire"),
        ("有人被困电梯", "trapped"),
        ("老人晕倒了", "injury"),
        ("有人拿刀打人", "violence"),
        ("万一着火了怎么办", None),
        ("消防通道堵了 有火灾隐患", None),
        ("上次电梯困人以后一直没修", None),
        ("楼下饭店油烟好大", None),
        ("最近被噪音困扰好久", None),
        ("钥匙掉进下水道了", None),
        ("听说隔壁小区着火了", None),
        # Stories about a danger that is over: not an emergency now.
        ("上个月食物中毒进了医院 那家饭店该找谁", None),
        ("楼下饭店吃坏了肚子 上个月食物中毒", None),
        ("老人心脏病突发 幸好发现及时才没出大事", None),
        ("上周有人被困电梯 到现在还没修", None),
        ("前几天楼下有人打架", None),
        ("楼道里的烟感一直在响 也没着火", None),
        ("老人摔倒了已经送医院了 物业的地太滑了", None),
        # ... but a word of the present, or an urgent call for help, brings it back (recall first).
        ("上次着火的地方现在又冒烟了", "fire"),
        ("去年着过火。三楼着火了", "fire"),
        ("楼上着火了 要是不来人就烧到我家了", "fire"),
        ("之前说过楼道有隐患 现在真的着火了", "fire"),
        ("有人晕倒了 已经打了120 还没来", "injury"),
        ("救护车来之前该怎么办 老人晕倒了", "injury"),
        # A gas smell mentioned earlier is likely still there.
        ("之前就有煤气味 越来越重了", "gas"),
        ("昨天开始一直闻到煤气味", "gas"),
        # Danger words beyond the obvious ones, and a danger word split from its object by a space.
        ("液化气罐的阀门关不上了 一直在漏", "gas"),
        ("电梯停在半路 门打不开 我儿子在里面", "trapped"),
        ("我爸突然倒地了 叫不醒", "injury"),
        ("孩子误吞了一颗纽扣电池", "injury"),
        ("有人在撬隔壁的门", "violence"),
        ("配电箱冒烟了", "fire"),
        # Sparks or a burning smell from wiring are treated as fire (routing rule 6, kb/README.md), burnt food is not.
        ("插座打火花", "fire"),
        ("闻到一股烧焦味 好像是电线", "fire"),
        ("饭烧焦了 一屋子糊味", None),
        # A typo fixed by normalize().
        ("着伙了 快来人啊 三楼", "fire"),
        # A bare call for help is urgent but says nothing about the kind; other words decide it.
        ("救命", "help"),
        ("救命啊 快来人", "help"),
        ("救命 有人在撬门", "violence"),
        # Stroke signs and coughing up blood call for an ambulance; "气得说不出话" is a figure of speech.
        ("我妈突然说不出话了 嘴也歪了", "injury"),
        ("爷爷半边身子动不了 口齿不清", "injury"),
        ("我爸突然吐血了", "injury"),
        ("被物业气得说不出话", None),
        # "What if there really were a fire" asks about a risk; a real fire now stays one.
        ("真着火了怎么办", None),
        ("消防栓都是坏的 真起火了拿什么灭", None),
        ("到时候着火了谁负责", None),
        ("现在真的着火了", "fire"),
        # A fault that keeps coming back is a repair, except a gas smell (recall first).
        ("插座一插就冒火星 不敢用了", None),
        ("电梯老是困人 修了又坏", None),
        ("每次开灶都有煤气味", "gas"),
        # People trapped and bites, as residents say them.
        ("电梯又坏了，困了好几个人", "trapped"),
        ("电梯困了3个人 快来", "trapped"),
        ("小区里有人溜狗不栓绳，还把小孩咬了", "injury"),
        ("楼下的狗把老人咬了", "injury"),
        ("上次被狗咬了 物业也不管", None),
        ("万一被狗咬了怎么办", None),
    ],
)
def test_emergency_rule_is_about_danger_now(text: str, kind: str | None) -> None:
    assert emergency_kind(normalize(text)) == kind


@pytest.mark.parametrize(
    ("text", "asks"),
    [
        ("最近楼下新开了一家酒吧 天天放音乐到凌晨 这种该找哪个部门", True),
        ("停车费乱涨价能向哪里反映", True),
        ("物业的座机号码是多少", True),
        ("顶楼漏水好几年了 现在应该找谁", True),
        ("雨棚被风刮坏了 谁来处理", True),
        ("这种事该跟谁提", True),
        ("手机被骗了钱 去哪报案", True),
        ("这种情况该向谁反映", True),
        ("路灯不亮找哪个单位", True),
        ("补贴停发了 该去问谁", True),
        ("出租房子要去哪登记", True),
        ("工资一直拖着不发 该去哪", True),
        ("我提交的投诉现在到哪个部门了", False),  # the resident's own appeal: status
        ("楼道灯坏了好几天了", False),
    ],
)
def test_who_to_contact_rule(text: str, asks: bool) -> None:
    assert asks_who_to_contact(normalize(text)) is asks


async def test_who_to_contact_question_after_a_long_description(nlu: EmbeddedNLU) -> None:
    understanding = await nlu.parse(
        "我们楼下那家烧烤店每天营业到凌晨 油烟和吵闹声都很大 跟老板说过好几次也不改 这种情况应该找哪个部门"
    )
    assert understanding.intent.name is Intent.ASK_CONTACT


def test_knowledge_base_overrules_a_model_only_emergency(nlu: EmbeddedNLU) -> None:
    """No danger word and a plain ordinary matter: not an emergency. With any danger hint, it stays one."""
    model = nlu.model
    ordinary = EmbeddedNLU(model, matters=lambda text: (0.8, False))
    urgent_matter = EmbeddedNLU(model, matters=lambda text: (0.8, True))
    unsure = EmbeddedNLU(model, matters=lambda text: (0.3, False))
    probe = next(
        text
        for text in ("有人在电梯口", "有人在楼顶", "有人在小区里", "有人在楼下叫", "有个人在单元门口")
        if EmbeddedNLU(model, matters=None).understand(text).intent.name is Intent.EMERGENCY
    )
    assert ordinary.understand(probe).intent.name in (Intent.REPORT, Intent.ASK_CONTACT)
    assert urgent_matter.understand(probe).intent.name is Intent.EMERGENCY
    assert unsure.understand(probe).intent.name is Intent.EMERGENCY
    # A danger word keeps the emergency whatever the knowledge base says.
    assert ordinary.understand("有人在楼下打人").intent.name is Intent.EMERGENCY


async def test_shipped_knowledge_base_corrects_a_complaint_read_as_emergency(nlu: EmbeddedNLU) -> None:
    understanding = await nlu.parse("有人在楼道里遛狗不牵绳 把小朋友吓坏了")
    assert understanding.intent.name is Intent.REPORT


async def test_emergency_rule_overrides_the_model(nlu: EmbeddedNLU) -> None:
    # Phrased like a question about responsibility, but a gas smell is an emergency first.
    understanding = await nlu.parse("闻到燃气味了 这个归谁管")
    assert understanding.intent.name is Intent.EMERGENCY
    assert understanding.intent.confidence >= 0.9


@pytest.mark.parametrize(
    ("text", "cancel"),
    [
        ("算了", True),
        ("取消吧", True),
        ("不用了谢谢", True),
        ("算了算了", True),
        ("算了 楼道灯还是坏的", False),
    ],
)
def test_short_cancel_rule(text: str, cancel: bool) -> None:
    assert is_short_cancel(normalize(text)) is cancel


def test_features_fold_digits_and_mark_boundaries() -> None:
    grams = features(normalize("3栋502"))
    assert "^0栋" in grams and "0$" in grams and "#len4" in grams
    assert not any(ch.isdigit() and ch != "0" for g in grams for ch in g if not g.startswith("#"))


def test_training_matches_a_reference_optimum() -> None:
    """The numpy L-BFGS reaches the optimum of the regularized loss (the gradient vanishes)."""
    examples = load_training_data()[::4]
    model = train(examples)
    assert model.coef_t.shape == (len(model.vocabulary), len(model.classes))
    # On its own training data a well-fitted model is almost always right.
    nlu = EmbeddedNLU(model)
    right = sum(nlu.understand(e.text).intent.name is e.intent for e in examples)
    assert right / len(examples) > 0.97


def test_cache_is_written_and_reused(tmp_path: Path) -> None:
    first = build(tmp_path)
    assert first.origin == "trained"
    cached = list(tmp_path.glob("nlu-embedded-*.npz"))
    assert [p.name for p in cached] == [f"nlu-embedded-{cache_key()}.npz"]
    second = build(tmp_path)
    assert second.origin == "cache"
    for text in ("楼道灯坏了找谁", "着火了", "谢谢"):
        a, b = first.understand(text), second.understand(text)
        assert a.intent.name is b.intent.name
        assert np.isclose(a.intent.confidence, b.intent.confidence)


TINY_DATA = (
    'version: "3.1"\nnlu:\n'
    "- intent: greet\n  examples: |\n    - 你好\n    - 在吗\n    - 早上好\n"
    "- intent: thanks\n  examples: |\n    - 谢谢\n    - 多谢\n    - 感谢你\n"
)


@pytest.fixture
def tiny_data(tmp_path: Path) -> Path:
    """A two-intent training set: the cache tests are about files, not accuracy, and train in ms."""
    data = tmp_path / "nlu"
    data.mkdir()
    (data / "smalltalk.yml").write_text(TINY_DATA, encoding="utf-8")
    return data


def test_unreadable_cache_means_training_again(tmp_path: Path, tiny_data: Path) -> None:
    cache = tmp_path / "cache"
    load_or_train(cache, tiny_data)
    (path,) = cache.glob("nlu-embedded-*.npz")
    path.write_bytes(b"not a numpy archive")
    model, origin = load_or_train(cache, tiny_data)
    assert origin == "trained"
    assert EmbeddedNLU(model).understand("谢谢你").intent.name is Intent.THANKS
    assert load_or_train(cache, tiny_data)[1] == "cache"  # and the cache was repaired


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores file permissions")
def test_read_only_cache_dir_still_serves(tmp_path: Path, tiny_data: Path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        _model, origin = load_or_train(locked / "cache", tiny_data)
    finally:
        locked.chmod(0o700)
    assert origin == "trained"


def test_cache_location_that_is_a_file_still_serves(tmp_path: Path, tiny_data: Path) -> None:
    blocker = tmp_path / "cache"
    blocker.write_text("a file where the cache folder should be")
    _model, origin = load_or_train(blocker, tiny_data)
    assert origin == "trained"


def test_training_data_change_invalidates_the_cache(tmp_path: Path) -> None:
    data = tmp_path / "nlu"
    data.mkdir()
    body = 'version: "3.1"\nnlu:\n- intent: greet\n  examples: |\n    - 你好\n- intent: thanks\n  examples: |\n    - 谢谢\n'
    (data / "a.yml").write_text(body)
    key = cache_key(data)
    (data / "a.yml").write_text(body + "    - 多谢\n")
    assert cache_key(data) != key


async def test_registry_builds_it_from_settings(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    nlu = await build_nlu(settings)
    assert isinstance(nlu, EmbeddedNLU)
    assert (tmp_path / "cache").is_dir()
    again = await create(settings)
    assert isinstance(again, EmbeddedNLU) and again.origin == "cache"


def test_warm_start_is_fast(nlu_cache_dir: Path, shared_nlu: NLUBackend) -> None:
    started = time.process_time()
    warm = build(nlu_cache_dir / "cache")
    assert warm.origin == "cache"
    assert time.process_time() - started < 1.0


def test_understanding_is_fast(nlu: EmbeddedNLU) -> None:
    texts = [text for text, _ in CASES] * 20
    costs = []
    for text in texts:
        started = time.thread_time()
        nlu.understand(text + "。")  # defeat the normalize cache
        costs.append(time.thread_time() - started)
    costs.sort()
    assert costs[len(costs) // 2] < 0.002  # CPU time, generous: measured ~0.1-0.3 ms


def test_short_messages_are_understood_once(nlu: EmbeddedNLU) -> None:
    """Buttons and short answers repeat across residents: their understanding is kept, not recomputed."""
    first = nlu.understand("不留电话")
    assert nlu.understand("不留电话") is first
    long_text = "3栋2单元楼道灯坏了好几天了，晚上回家很不方便"
    assert nlu.understand(long_text) is not nlu.understand(long_text)
    assert nlu.understand(long_text) == nlu.understand(long_text)
