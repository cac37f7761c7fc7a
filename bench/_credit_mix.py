"""What the synthetic district is made of: event types by subject kind, follow-ups, quantities,
the source systems, region codes and names. Change the district's character here."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from credit.identifiers import SubjectKind
from credit.rulebook import Rulebook

# Relative weights of the event types per subject kind (per 10,000 events of that kind). Common:
# volunteer service, social insurance, on-time repayment, blood donation (persons), tax grades and
# risk classes (organizations); late utility fees and simple penalties; serious events rare;
# court defaulter listings about 0.3%.
PERSON_MIX: dict[str, float] = {
    "volunteer_service": 1800,
    "social_insurance_12m": 1800,
    "on_time_repayment_12m": 1500,
    "penalty_simple": 1700,
    "late_utility_fees": 1300,
    "blood_donation": 400,
    "loan_arrears": 300,
    "penalty_general": 250,
    "honour_street": 200,
    "industry_commendation": 120,
    "honour_district": 100,
    "contract_default": 100,
    "adjudged_unpaid_debt": 60,
    "discipline_warning": 60,
    "sued_in_breach": 40,
    "honour_municipal": 40,
    "court_defaulter_listed": 30,
    "administrative_detention": 20,
    "discipline_serious_warning": 20,
    "honour_provincial": 10,
    "licence_suspended": 10,
    "fraud_pyramid_counterfeit": 10,
    "bravery_district": 6,
    "criminal_conviction": 5,
    "discipline_dismissal": 5,
    "utility_theft": 5,
    "bravery_city": 3,
    "licence_revoked_practising": 3,
    "licence_revoked_closure_ban": 3,
    "licensing_fraud": 2,
    "honour_national": 2,
    "bravery_province": 1,
    "bravery_nation": 0.2,
}
ORG_MIX: dict[str, float] = {
    "tax_credit_b": 1500,
    "penalty_simple": 1500,
    "on_time_repayment_12m": 1000,
    "tax_credit_a": 900,
    "late_utility_fees": 900,
    "market_risk_a": 800,
    "penalty_general": 500,
    "contract_default": 350,
    "tax_credit_c": 250,
    "industry_commendation": 200,
    "abnormal_operations_listed": 150,
    "loan_arrears": 150,
    "market_risk_d": 100,
    "sued_in_breach": 100,
    "adjudged_unpaid_debt": 100,
    "honour_street": 60,
    "honour_district": 40,
    "court_defaulter_listed": 30,
    "fraud_pyramid_counterfeit": 30,
    "tax_credit_d": 20,
    "licence_suspended": 20,
    "honour_municipal": 20,
    "licence_revoked_closure_ban": 15,
    "serious_violation_listed": 10,
    "licensing_fraud": 5,
    "utility_theft": 5,
    "licence_revoked_practising": 5,
    "honour_provincial": 5,
    "honour_national": 1,
}
# A listing is followed by its exit (refers_to the listing) with this probability, 3-24 months later.
FOLLOW_UPS: dict[str, tuple[str, float]] = {
    "court_defaulter_listed": ("court_defaulter_delisted", 0.6),
    "tax_credit_d": ("tax_list_exit", 0.3),
    "serious_violation_listed": ("serious_violation_delisted", 0.3),
    "abnormal_operations_listed": ("abnormal_operations_removed", 0.7),
}
# Quantities: stars 1-5, blood in 100 ml units (200/300/400 ml), arrears in monthly cycles.
QUANTITIES: dict[str, tuple[tuple[int, ...], tuple[float, ...]]] = {
    "volunteer_service": ((1, 2, 3, 4, 5), (35, 30, 18, 11, 6)),
    "blood_donation": ((2, 3, 4), (30, 30, 40)),
    "loan_arrears": (tuple(range(1, 13)), (40, 20, 12, 8, 5, 4, 3, 2, 2, 2, 1, 1)),
}
# The source system (client name) of each source role.
SOURCE_NAMES: dict[str, str] = {
    "approval": "district-approval-system",
    "enforcement": "district-enforcement",
    "court": "district-court",
    "tax": "district-tax-bureau",
    "market_regulation": "district-market-regulation",
    "honours": "district-honours-office",
    "volunteering": "volunteer-platform",
    "blood_donation": "city-blood-centre",
    "utilities": "city-utilities",
    "social_insurance": "social-insurance-agency",
    "finance": "credit-reference-feed",
    "professional": "industry-regulators",
    "discipline": "district-discipline",
    "public_security": "district-public-security",
}
# Region codes: a district of Fuzhou (most residents and registrations), some from elsewhere. The
# city part (digits 3-4) is never a province code, so a resident ID can never also read as a
# valid credit code (parse_identifier would call it ambiguous).
HOME_REGIONS = ("350102", "350103", "350104", "350105", "350111")
OTHER_REGIONS = ("350181", "350121", "350582", "350602", "110105", "310115", "440305", "330106", "510107")
SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董潘袁"
GIVEN = "伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚桂英华建国玉兰文辉鑫宇浩然子涵"
ORG_WORDS = ("闽江", "鼓楼", "榕城", "海峡", "东街", "三坊", "西湖", "屏山", "乌山", "温泉", "五一", "华林")
ORG_TRADES = ("贸易", "科技", "建设", "餐饮", "物流", "医药", "信息", "文化", "电子", "机械", "食品", "咨询")
ORG_FORMS = (
    ("91", "有限公司", 70),
    ("92", "经营部", 20),
    ("93", "专业合作社", 2),
    ("52", "协会", 3),
    ("12", "服务中心", 4),
    ("11", "办公室", 1),
)


@dataclass(frozen=True)
class TypeGen:
    """How to generate one event type."""

    name: str
    sources: tuple[str, ...]
    quantities: tuple[tuple[int, ...], tuple[float, ...]] | None
    follow_up: tuple[str, float] | None
    arrears: bool


def check_mix(rulebook: Rulebook) -> dict[str, TypeGen]:
    """Every generated type exists, applies to its kind, and respects max_quantity."""
    gens: dict[str, TypeGen] = {}
    for kind, mix in ((SubjectKind.PERSON, PERSON_MIX), (SubjectKind.ORGANIZATION, ORG_MIX)):
        for name in mix:
            et = rulebook.event_types[name]
            if kind not in et.subjects or et.ends_listing:
                raise ValueError(f"{name} cannot be generated for a {kind.value}")
            q = QUANTITIES.get(name)
            if q is not None and max(q[0]) > et.max_quantity:
                raise ValueError(f"{name}: quantity above max_quantity {et.max_quantity}")
            follow = FOLLOW_UPS.get(name)
            if follow is not None:
                exit_et = rulebook.event_types[follow[0]]
                if not exit_et.ends_listing or set(exit_et.sources) != set(et.sources):
                    raise ValueError(f"{follow[0]} must end {name} from the same source")
                if kind not in exit_et.subjects:
                    raise ValueError(f"{follow[0]} cannot follow for a {kind.value}")
            gens[name] = TypeGen(name, tuple(et.sources), q, follow, name == "loan_arrears")
    for name, (exit_name, _p) in FOLLOW_UPS.items():
        gens[exit_name] = TypeGen(exit_name, gens[name].sources, None, None, False)
    return gens


def cumulative(weights: Sequence[float]) -> list[float]:
    out, total = [], 0.0
    for w in weights:
        total += w
        out.append(total)
    return out
