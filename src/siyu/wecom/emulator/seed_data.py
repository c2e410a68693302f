"""The vocabulary the emulator draws a realistic Chinese corp from: names, departments, tags, channels.

Plain constants only, so the generator in state.py stays readable and the data is easy to extend.
"""

from __future__ import annotations

CORP_NAME = "思域示范零售有限公司"

# (name, parent name or None for the root, name_en)
DEPARTMENTS: tuple[tuple[str, str | None, str], ...] = (
    ("总部", None, "Headquarters"),
    ("销售部", "总部", "Sales"),
    ("客服部", "总部", "Customer Service"),
    ("市场部", "总部", "Marketing"),
    ("华东大区", "总部", "East China"),
    ("上海门店", "华东大区", "Shanghai Store"),
    ("杭州门店", "华东大区", "Hangzhou Store"),
    ("南京门店", "华东大区", "Nanjing Store"),
    ("华南大区", "总部", "South China"),
    ("广州门店", "华南大区", "Guangzhou Store"),
    ("深圳门店", "华南大区", "Shenzhen Store"),
    ("华北大区", "总部", "North China"),
    ("北京门店", "华北大区", "Beijing Store"),
)

POSITIONS_BY_DEPARTMENT: dict[str, tuple[str, ...]] = {
    "总部": ("总经理", "运营总监"),
    "销售部": ("销售经理", "销售顾问", "大客户经理"),
    "客服部": ("客服主管", "客服专员"),
    "市场部": ("市场专员", "内容运营"),
}
STORE_POSITIONS: tuple[str, ...] = ("店长", "导购", "导购", "美容顾问", "区域经理")

# (character, pinyin)
SURNAMES: tuple[tuple[str, str], ...] = (
    ("王", "wang"), ("李", "li"), ("张", "zhang"), ("刘", "liu"), ("陈", "chen"), ("杨", "yang"),
    ("黄", "huang"), ("赵", "zhao"), ("吴", "wu"), ("周", "zhou"), ("徐", "xu"), ("孙", "sun"),
    ("马", "ma"), ("朱", "zhu"), ("胡", "hu"), ("郭", "guo"), ("何", "he"), ("高", "gao"),
    ("林", "lin"), ("罗", "luo"), ("郑", "zheng"), ("梁", "liang"), ("谢", "xie"), ("宋", "song"),
    ("唐", "tang"), ("许", "xu"), ("韩", "han"), ("冯", "feng"), ("邓", "deng"), ("曹", "cao"),
    ("彭", "peng"), ("曾", "zeng"), ("肖", "xiao"), ("田", "tian"), ("董", "dong"), ("袁", "yuan"),
    ("潘", "pan"), ("于", "yu"), ("蒋", "jiang"), ("蔡", "cai"), ("余", "yu"), ("杜", "du"),
    ("叶", "ye"), ("程", "cheng"), ("苏", "su"), ("魏", "wei"), ("吕", "lv"), ("丁", "ding"),
    ("任", "ren"), ("沈", "shen"), ("姚", "yao"), ("卢", "lu"), ("姜", "jiang"), ("崔", "cui"),
    ("钟", "zhong"), ("谭", "tan"), ("陆", "lu"), ("汪", "wang"), ("范", "fan"), ("金", "jin"),
)  # fmt: skip

GIVEN_CHARS: tuple[tuple[str, str], ...] = (
    ("伟", "wei"), ("芳", "fang"), ("娜", "na"), ("敏", "min"), ("静", "jing"), ("丽", "li"),
    ("强", "qiang"), ("磊", "lei"), ("军", "jun"), ("洋", "yang"), ("勇", "yong"), ("艳", "yan"),
    ("杰", "jie"), ("娟", "juan"), ("涛", "tao"), ("明", "ming"), ("超", "chao"), ("秀", "xiu"),
    ("霞", "xia"), ("平", "ping"), ("刚", "gang"), ("桂", "gui"), ("英", "ying"), ("华", "hua"),
    ("玉", "yu"), ("兰", "lan"), ("萍", "ping"), ("鹏", "peng"), ("辉", "hui"), ("婷", "ting"),
    ("雪", "xue"), ("琳", "lin"), ("晨", "chen"), ("欣", "xin"), ("宇", "yu"), ("浩", "hao"),
    ("凯", "kai"), ("佳", "jia"), ("怡", "yi"), ("思", "si"), ("雨", "yu"), ("子", "zi"),
    ("梓", "zi"), ("轩", "xuan"), ("嘉", "jia"), ("睿", "rui"), ("博", "bo"), ("文", "wen"),
    ("倩", "qian"), ("颖", "ying"), ("慧", "hui"), ("建", "jian"), ("国", "guo"), ("志", "zhi"),
    ("晓", "xiao"), ("海", "hai"), ("云", "yun"), ("飞", "fei"), ("丹", "dan"), ("鑫", "xin"),
)  # fmt: skip

# (group name, tag names); ids are generated
TAG_GROUPS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("客户等级", ("VIP", "A类客户", "B类客户", "C类客户", "D类客户")),
    ("意向产品", ("护肤套装", "精华液", "面膜", "彩妆", "香水", "身体护理", "男士系列")),
    ("来源渠道", ("门店扫码", "线上商城", "抖音直播", "小红书", "朋友推荐", "展会活动")),
    ("生命周期", ("潜在客户", "意向客户", "首单客户", "复购客户", "沉睡客户", "流失客户")),
    ("兴趣偏好", ("价格敏感", "关注新品", "喜欢直播", "会员活动")),
)

CHANNEL_STATES: tuple[str, ...] = (
    "store_sh_01", "store_sh_02", "store_hz_01", "store_nj_01", "store_gz_01", "store_sz_01",
    "store_bj_01", "ad_douyin_0301", "ad_xhs_spring", "event_expo_2024", "mall_checkout", "poster_618",
)  # fmt: skip

# add_way values with weights (reference §3.4): mostly QR scans, some searches and shared cards
ADD_WAYS: tuple[tuple[int, int], ...] = (
    (1, 45), (2, 12), (3, 10), (4, 8), (5, 4), (6, 6), (16, 5), (201, 5), (202, 5),
)  # fmt: skip

REMARK_SUFFIXES: tuple[str, ...] = ("姐", "哥", "总", "老师", "女士", "先生", "")
DESCRIPTIONS: tuple[str, ...] = (
    "老客户，偏好抗衰系列",
    "咨询过618活动",
    "门店体验过面部护理",
    "对价格比较敏感",
    "公司采购对接人",
    "朋友推荐过来的",
    "想了解会员权益",
    "",
)

CUSTOMER_CORPS: tuple[tuple[str, str], ...] = (
    ("腾讯", "腾讯科技（深圳）有限公司"),
    ("华润万家", "华润万家有限公司"),
    ("美团", "北京三快在线科技有限公司"),
    ("携程", "携程旅游网络技术（上海）有限公司"),
    ("百丽", "百丽国际控股有限公司"),
)
CUSTOMER_POSITIONS: tuple[str, ...] = ("采购经理", "行政主管", "市场总监", "运营", "店长")

GROUP_NAMES: tuple[str, ...] = (
    "VIP会员群", "新品体验群", "福利秒杀群", "护肤交流群", "门店老客群", "直播粉丝群", "宝妈护肤群",
)  # fmt: skip
GROUP_NOTICES: tuple[str, ...] = (
    "文明沟通，拒绝广告",
    "每周五晚8点直播，记得来哦",
    "群内福利仅限会员领取",
    "",
)
