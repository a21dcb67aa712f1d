"""High-precision rules on top of the model, because some mistakes cost more than others.

A keyword rule for emergencies (fire, smoke, gas smell, someone trapped, injured or attacked *now*;
hypothetical or past mentions such as "万一着火", "上个月食物中毒进了医院" are left to the model), an exact
rule for short cancel words (取消 / 算了 / 不报了), and a rule for an outright "who handles this / what is
the number" question. All take normalized (simplified, lower-case) text.
"""

from __future__ import annotations

import re

from bot.nlu.base import Intent
from bot.nlu.features import SEPARATORS

HELP = "help"
"""The kind of a bare call for help ("救命"): an emergency of no particular kind (the last kind, so any
other danger word in the message says what it is)."""

_GAS = "煤气|燃气|天然气|天燃气|液化气|煤汽|燃汽|(?<!天)然气"
"""Gas, as residents type it in a hurry (燃汽, 天燃气, 然气 are pinyin-input slips)."""

# Danger happening now, by kind. Matched on normalized (simplified, lower-case) text.
EMERGENCY_PATTERNS: dict[str, re.Pattern[str]] = {
    "gas": re.compile(
        rf"(?:{_GAS})(?:味|的味道|中毒)|"
        rf"(?:{_GAS}|燃起(?=泄|漏))[^。！？!?]{{0,12}}(?:漏了|漏气|在漏|泄漏|泄露)|"
        r"臭鸡蛋味|一氧化碳|煤气罐\S{0,3}(?:着火|爆)"
    ),
    "fire": re.compile(
        r"着火|著火|失火|起火|着了火|烧起来|烧着了|(?:还在|正在|一直在)烧(?![烤饭菜水纸香])|冒火|火苗|火光|发生火灾|爆炸|浓烟|冒黑烟|冒烟|"
        r"(?<!油)烟(?:好大|很大|太大|特别大)|全是烟|都是烟|火(?:往上窜|越烧越|蔓延)|火势|火花|"
        r"(?:电线|插座|开关|电箱|电表箱|配电箱|闸盒)[^。!?]{0,8}(?:焦味|糊味|烧焦)|"
        r"(?:焦味|糊味|烧焦)[^。!?]{0,8}(?:电线|插座|开关|电箱|电表箱|配电箱|闸盒)"
    ),
    "trapped": re.compile(
        r"困电梯|困在电梯|电梯困人|电梯里困|被困(?!扰)|关在电梯|卡在电梯|电梯里出不来|电梯\S{0,6}(?:往下掉|下坠|坠落|掉下去)|"
        r"电梯卡住了?\S{0,6}(?:里面有人|有人在里面)|卡在两层|困了\S{0,4}(?:人|个|位)|困住了?\S{0,4}(?:人|个|位)|"
        r"电梯[^。!?]{0,12}(?:卡|停在|不动|打不开|坏)[^。!?]{0,14}"
        r"(?:里面有(?:人|个|小孩|孩子|老人|我)|(?:人|孩子|小孩|老人|儿子|女儿|我妈|我爸|我)在里面|出不来)"
    ),
    "injury": re.compile(
        r"晕倒|昏倒|昏迷|晕过去|不省人事|流血|出血|血流|受伤了|受了伤|摔伤|骨折|摔下来|摔下去|坠楼|跳楼|"
        r"(?:人|孩子|小孩|老人|娃|宝宝)\S{0,6}(?:掉下去|掉下来|掉进)|掉进\S{0,4}(?:河|湖|池塘|水池|水里|井里)|"
        r"溺水|触电|被电(?:了|到|击|倒|晕)|电到(?:了|人)|电击|没有呼吸|没呼吸|没了呼吸|抽搐|心脏病|一动不动|摔倒\S{0,6}起不来|摔(?:在|到)?地上|(?:摔|跌|滑倒)\S{0,6}(?:爬不起来|起不来|动不了)|砸伤|咬伤|"
        r"(?:狗|猫)[^。!?]{0,10}咬了|被(?:狗|猫)?咬了|咬到(?:人|孩子|小孩|老人)|把(?:人|孩子|小孩|老人)\S{0,2}咬|"
        r"中毒|卡在防盗窗|锁在车里|反锁在车|倒地|倒在(?:地上|楼梯|路边|门口|楼道|家里|卫生间)|摔破|磕破|(?<!带)头破|"
        r"血止不住|止不住血|叫不醒|叫了不应|叫不应|误吞|误食|误喝|噎住|喘不上气|呼吸困难|口吐白沫|休克|中风|"
        r"脑梗|心梗|摔倒了|跌倒了|摔了一跤|吐血|咯血|呕血|(?<!气得)(?<!气的)(?<!吓得)(?<!吓的)说不出话|口齿不清|嘴歪|"
        r"口眼歪斜|半(?:边|个)(?:身子|身体|脸)\S{0,4}(?:动不了|不能动|没知觉|没感觉|发麻|麻了|没力气|使不上劲)|偏瘫"
    ),
    "violence": re.compile(
        r"打人|打架|斗殴|持刀|拿刀|拿着刀|动刀|砍人|杀人|伤人|家暴|打老婆|打老公|打孩子|抢劫|抢东西|撬门|撬锁|"
        r"入室|砸门|动手了|绑架|非礼|猥亵|撬\S{0,4}(?:门|锁)|砍刀|菜刀|抢包|抢手机|抢钱|尾随|一直跟着我|"
        r"跟踪我|打起来了|有人在偷|正在偷|在偷东西|小偷还在|小偷就在"
    ),
    # A bare call for help says that something is wrong, not what: the kind is left to the other words.
    HELP: re.compile(r"救命(?![的钱稻])|救救我(?!们)|快救人|快来救"),
}
# When is the danger? Residents tell stories ("上个月食物中毒进了医院", "老人心脏病突发，发现及时才没出大事")
# and ask hypotheticals ("万一着火怎么办") in the same words as a cry for help. Recall comes first: a danger
# word counts unless something *before it in the same sentence* moves it out of the present, or the
# message says the danger is over — and an explicit word of the present or of urgency wins back.
_HYPOTHETICAL_OR_PAST = re.compile(
    r"万一|如果|要是|假如|假设|一旦|(?:担心|生怕|以免|避免|(?<![可好害])怕)(?=[^。!?，,\s]{0,8}?(?:会|被|咬|着火|起火|烧|摔|触电|困|出事|引起|引发|发生))|上次|上回|去年|前年|曾经|发生过|差点|险些|听说|据说|"
    r"稍有不慎|不小心就|随时(?:可能|会|都)|迟早|就会|难免|"
    r"上个月|上个星期|上月|上周|上星期|上礼拜|几个月前|年前|那次|那回|那天|当时|小时候|到时候|哪天|要真|真要|若是|倘若|"
    r"真的?(?=[^。!?！？]{1,8}?(?:怎么办|咋办|怎么弄|拿什么|怎么逃|怎么跑|谁负责|谁来救|来不及|来得及))"
)
"""Hypothetical or clearly past: holds from where it appears to the end of the sentence. "真着火了怎么办"
(what if there really is a fire) asks about a risk; "现在真的着火了" is not a question and stays."""
_HABITUAL = re.compile(
    r"一(?:插|用|按|拔|接|充|通电)\S{0,3}就|一开(?:灯|电|空调|热水器|机|关)\S{0,2}就|每次|每回|老是|总是|经常|时常|常常|动不动|时不时|隔三差五|三天两头|有时(?!间)|偶尔"
)
"""A fault that keeps coming back ("插座一插就冒火星", "电梯老是困人"): a repair to report, not a fire or a
trapped person now — for those kinds only (a smell of gas, an injury or violence stay, recall first)."""
_HABITUAL_KINDS = frozenset({"fire", "trapped"})
_RECENT_PAST = re.compile(
    r"(?<![来到])之前|(?<![来到])以前|昨天|昨晚|昨日|前天|前晚|前几天|前些天|前阵子|前段时间"
)
"""Recent past: like the above, except for a gas smell, which is likely still there (recall first)."""
_PRESENT = re.compile(r"现在|正在|还在|刚刚|刚才|此刻|这会儿|今天|今晚|一直|开始|又在|越来越|仍然|依然")
"""A word of the present after a past marker brings the sentence back to now ("上次着火的地方现在又冒烟了")."""
_RISK_OR_FICTION = re.compile(
    r"隐患|防止|预防|演练|演习|培训|宣传|容易|可能会|会不会|报警器|报警按钮|报警铃|报警装置|警铃坏|"
    r"电影|新闻|视频|游戏|笑死|吓死我了哈|"
    r"事件|现象|案件|时有发生|经常发生|多次发生|屡次发生|司空见惯|层出不穷|的信息"
)
"""A risk, a drill or a story on a screen: the whole clause is not an event."""
_OVER = re.compile(
    r"才没|没出事|没出大事|住院|进了医院|送医院了|送去医院了|送到医院了|出院|抢救过来|脱离危险|已经没事|"
    r"火灭了|火已经灭|扑灭了"
)
"""The outcome is told: the danger is over, whatever the tense (unless the message is also urgent)."""
_URGENT = re.compile(r"救命|快来人|快来|快救|赶紧来|赶快来|快报警|快打")
_ANY_DANGER = re.compile("|".join(f"(?:{p.pattern})" for p in EMERGENCY_PATTERNS.values()))
_NEGATED = re.compile(r"(?:没|没有|并没有|不是|未|无|[打点]不)$")
"""Just before a danger word: "也没着火", "不是着火" tell that there is none ("燃气灶打不着火": the stove will
not light)."""
_NUISANCE_SMOKE = re.compile(r"油烟|烟囱|烟道|排烟|抽烟|吸烟|香烟|烟头|烟味|烧纸|烧烤|熏")
"""Smoke that is a nuisance to report, not a fire: a restaurant's chimney, a neighbour's cigarette or paper
burnt for the dead. It discards a smoke word of its sentence ("冒烟", "烟好大"), never a flame word ("着火")."""
_SMOKE_ONLY = re.compile(r"[^火]*烟[^火]*")
_SENTENCE_END = re.compile(r"[。!?！？;；]+")
_CLAUSE_END = re.compile(r"[\s,，、:：]+")
_TENSES = (
    ("past", _HYPOTHETICAL_OR_PAST),
    ("recent", _RECENT_PAST),
    ("habit", _HABITUAL),
    ("present", _PRESENT),
)


def _dangers_now(sentence: str) -> set[str]:
    """Kinds of danger that ``sentence`` tells as happening now.

    Each danger word takes the tense of the latest tense marker before it in the sentence (present
    when there is none); a risk or fiction word anywhere in its clause, or a negation right before it,
    discards it.
    """
    markers = sorted((m.start(), tense) for tense, pattern in _TENSES for m in pattern.finditer(sentence))
    clause_ends = [m.start() for m in _CLAUSE_END.finditer(sentence)] + [len(sentence)]
    kinds: set[str] = set()
    for kind, pattern in EMERGENCY_PATTERNS.items():
        for m in pattern.finditer(sentence):
            tense = "present"
            for position, marker in markers:
                if position >= m.start():
                    break
                tense = marker
            if (
                tense == "past"
                or (tense == "recent" and kind != "gas")
                or (tense == "habit" and kind in _HABITUAL_KINDS)
            ):
                continue
            if _NEGATED.search(sentence, max(0, m.start() - 3), m.start()):
                continue
            if kind == "fire" and _SMOKE_ONLY.fullmatch(m.group()) and _NUISANCE_SMOKE.search(sentence):
                continue
            clause_start = max((e for e in clause_ends if e < m.start()), default=0)
            clause_end = next(e for e in clause_ends if e >= m.end() or e == len(sentence))
            if _RISK_OR_FICTION.search(sentence, clause_start, clause_end):
                continue
            kinds.add(kind)
            break
    return kinds


LONG_MESSAGE_CHARS = 100
LIVE_DANGER_CHARS = 60
"""Of a message longer than :data:`LONG_MESSAGE_CHARS`, only the start can tell a danger happening now.
Someone in danger says so first; a long written appeal (a letter about a developer, a market, a road) mentions fires, fights and injuries deep in
its text as background, arguments or statistics ("每年发生2-3起火灾", "业主被逼得跳楼")."""


def emergency_kind(normalized: str) -> str | None:
    """The kind of danger (gas, fire, trapped, injury, violence, or :data:`HELP` for a bare "救命") the
    text reports as happening now.

    None when there is no danger word, or only hypothetical, past or risk mentions ("万一着火",
    "上次困电梯", "上个月食物中毒进了医院", "才没出大事"). A later word of the present ("上次着火的地方现在又
    冒烟了") keeps the emergency, and an urgent call for help ("救命", "快来人") overrides "the danger is
    over". When several kinds are present the first kind in :data:`EMERGENCY_PATTERNS` order wins: gas
    before fire (a gas leak must not be answered with "call 119 and use water"), trapped before injury.
    """
    if len(normalized) > LONG_MESSAGE_CHARS:
        normalized = normalized[:LIVE_DANGER_CHARS]
    if _ANY_DANGER.search(normalized) is None:  # most messages: no danger word at all
        return None
    if _OVER.search(normalized) and not _URGENT.search(normalized):
        return None
    kinds: set[str] = set()
    for sentence in _SENTENCE_END.split(normalized):
        kinds |= _dangers_now(sentence)
    return next((kind for kind in EMERGENCY_PATTERNS if kind in kinds), None)


_CANCEL_WORDS = re.compile(
    r"^(?:好吧|那|那就|哎|唉|嗯|我)?(?:取消|算了|不报了|不用了|不弄了|不填了|不要了|撤回|撤销|退出|不需要了|不搞了|"
    r"别弄了|别报了|停止|不想报了|不报修了|不反映了)+(?:吧|了|啦|呀|谢谢|吧谢谢)?$"
)
_CANCEL_MAX_CHARS = 8


def is_short_cancel(normalized: str) -> bool:
    compact = SEPARATORS.sub("", normalized)
    return len(compact) <= _CANCEL_MAX_CHARS and bool(_CANCEL_WORDS.match(compact))


# "Who handles it / whom do I call" said outright. A long message that describes the problem and ends
# with such a question ("……这种该找哪个部门") reads to the n-gram model like a report; the question decides.
# Precise on the training data (every match is ask_contact except one status question, which
# _ABOUT_MY_APPEAL excludes).
_WHO_TO_CONTACT = re.compile(
    r"找谁|该找|应该找|归谁|谁管|谁来管|谁负责|哪个部门|什么部门|哪个单位|找哪|能找哪|可以找|谁能帮|该向|向谁|向哪|归哪|"
    r"(?:去|到)哪(?:里|儿)?(?:举报|投诉|反映|申请|办|问|报|登记|咨询|交|缴|领)|打什么电话|打哪个电话|什么电话|"
    r"(?:电话|号码)(?:是)?多少|联系方式|怎么联系|谁来(?:处理|解决|修|管|负责|指导|帮|跟进)|(?:跟|和|同)谁(?:提|说|讲|反映|联系|投诉)|"
    r"(?:该|要|得|能)去?问谁|(?:该|能|可以|应该)去哪(?:里|儿)?(?:[\s。!?？]|$)"
)
_ABOUT_MY_APPEAL = re.compile(
    r"进度|到哪一步|处理到|我(?:的|提交的|报的|反映的)(?:诉求|投诉|工单|单子|问题)|工单|受理"
)
ASK_OVERRIDES = frozenset({Intent.REPORT, Intent.OTHER, Intent.GREET})
"""Intents the who-to-contact rule may overrule (never emergency, status, human, thanks or cancel)."""


def asks_who_to_contact(normalized: str) -> bool:
    """Whether the text asks outright who handles something or how to reach them."""
    return _WHO_TO_CONTACT.search(normalized) is not None and _ABOUT_MY_APPEAL.search(normalized) is None


# A danger word, or a weaker hint of one, told as not happening now: reported ("听说隔壁小区着火了"), past
# ("上个月电梯困过人", "以前有人在这里摔倒过"), hypothetical ("万一着火怎么办"), a risk ("有火灾隐患"), a
# nuisance ("楼下烧烤摊油烟很大") or a request for safety equipment ("楼道装监控", "每层配灭火器").
_DANGER_MENTION = re.compile(
    _ANY_DANGER.pattern + r"|火|烟|烧|爆|煤气|燃气|漏气|伤|血|晕|摔|跌倒|触电|咬|困|出不来|危险|救"
)
_REPORTED = re.compile(r"听说|据说|听人说|听邻居说|有人说|传言|谣言|网上说|群里说|新闻|视频|朋友圈")
_SAFETY_REQUEST = re.compile(
    r"(?:装|安装|加装|增设|配|配备|配置|添置|多放|放置|更换|换)\S{0,4}"
    r"(?:监控|摄像头|灭火器|消防栓|烟感|报警器|喷淋|扶手|护栏|防护网|应急灯|防盗窗|安全网|围栏|减速带)|"
    r"(?:监控|摄像头|灭火器|烟感|报警器|扶手|护栏|应急灯)\S{0,4}(?:过期|坏了|没有|缺|不够|不亮|失效)"
)
_FIRE_LANE = re.compile(r"消防(?:通道|车道|门|栓|设施|器材|检查|隐患)|安全出口|疏散通道")
_NOT_LIVE = (
    _HYPOTHETICAL_OR_PAST,
    _RECENT_PAST,
    _REPORTED,
    _RISK_OR_FICTION,
    _OVER,
    _SAFETY_REQUEST,
    _FIRE_LANE,
)


def told_not_live(normalized: str) -> bool:
    """Whether the text mentions a danger only as reported, past, hypothetical, a risk, a nuisance or a
    request for safety equipment: an ordinary appeal or question, not a call for 110/119/120.

    False when :func:`emergency_kind` finds a danger now, when the message is urgent ("救命", "快来"), and
    when nothing in it hints at a danger at all (then the model and the knowledge base decide).
    """
    if _DANGER_MENTION.search(normalized) is None or _URGENT.search(normalized):
        return False
    if emergency_kind(normalized) is not None:
        return False
    if _NUISANCE_SMOKE.search(normalized) or _NEGATED_DANGER.search(normalized):
        return True
    return any(p.search(normalized) for p in _NOT_LIVE)


_NEGATED_DANGER = re.compile(r"(?:没|没有|不是|未|[打点]不)(?:着火|起火|冒烟|漏气|受伤|咬到|摔着)")
