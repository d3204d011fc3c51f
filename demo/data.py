"""Deterministic fake shop data for `mactl demo`: Vietnamese people and a month of activity.

Everything is produced from one ``random.Random(seed)`` as native-format event payloads
(the JSON our /webhooks/events endpoint accepts), so the demo feeds the same parser and
store as production. Addresses use reserved example domains; phone numbers are random
09x/03x numbers and are only ever written to the demo outbox file.
"""

from __future__ import annotations

import random
import unicodedata
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

FAMILY = [
    ("Nguyễn", 38), ("Trần", 11), ("Lê", 9), ("Phạm", 7), ("Hoàng", 5), ("Huỳnh", 4),
    ("Phan", 4), ("Vũ", 4), ("Võ", 3), ("Đặng", 2), ("Bùi", 2), ("Đỗ", 2), ("Hồ", 1),
    ("Ngô", 1), ("Dương", 1), ("Lý", 1), ("Trương", 1), ("Đinh", 1), ("Mai", 1),
]  # fmt: skip
MIDDLE_MALE = ["Văn", "Đức", "Minh", "Quang", "Hữu", "Thành", "Công", "Gia", "Hoàng", "Tuấn"]
MIDDLE_FEMALE = ["Thị", "Ngọc", "Thu", "Thanh", "Hồng", "Phương", "Minh", "Bảo", "Khánh", "Mai"]
GIVEN_MALE = [
    "An", "Bình", "Cường", "Dũng", "Hùng", "Huy", "Khoa", "Long", "Minh", "Nam", "Phúc",
    "Quân", "Sơn", "Tài", "Thắng", "Tuấn", "Việt", "Đạt", "Hiếu", "Khánh", "Trung", "Kiên",
    "Lộc", "Phong", "Thịnh", "Vinh", "Hải", "Duy",
]  # fmt: skip
GIVEN_FEMALE = [
    "Anh", "Châu", "Dung", "Giang", "Hà", "Hạnh", "Hoa", "Hương", "Lan", "Linh", "Mai",
    "My", "Nga", "Ngân", "Nhung", "Oanh", "Phương", "Quỳnh", "Thảo", "Trang", "Vy", "Yến",
    "Thủy", "Hằng", "Trâm", "Diệp", "Loan", "Uyên",
]  # fmt: skip
CITIES = [
    ("Hồ Chí Minh", 34), ("Hà Nội", 30), ("Đà Nẵng", 8), ("Hải Phòng", 6), ("Cần Thơ", 5),
    ("Biên Hòa", 4), ("Huế", 4), ("Nha Trang", 4), ("Vũng Tàu", 3), ("Quy Nhơn", 2),
]  # fmt: skip
PHONE_PREFIXES = ["090", "091", "093", "094", "096", "097", "098", "032", "033", "034",
                  "035", "036", "037", "038", "039"]  # fmt: skip
EMAIL_DOMAINS = ["example.com", "example.net", "example.org"]
FORMS = ["popup_giam_gia", "footer_newsletter", "zalo_form", "landing_tet"]
PRODUCTS = [
    ("AT-001", "Áo thun cotton basic", 189000),
    ("AS-014", "Áo sơ mi linen", 459000),
    ("QJ-021", "Quần jean ống suông", 549000),
    ("VD-033", "Váy hoa nhí", 399000),
    ("AK-040", "Áo khoác gió", 650000),
    ("GS-052", "Giày sneaker trắng", 890000),
    ("TX-060", "Túi xách da mini", 1250000),
    ("ND-071", "Nón bucket", 159000),
    ("KM-080", "Kính mát thời trang", 320000),
    ("DH-095", "Đồng hồ dây da", 2150000),
    ("BL-102", "Balo laptop chống nước", 780000),
    ("KD-118", "Khăn lụa họa tiết", 210000),
]  # fmt: skip
CARRIERS = [("GHN", "https://donhang.ghn.vn/?order_code="), ("GHTK", "https://i.ghtk.vn/"),
            ("Viettel Post", "https://viettelpost.com.vn/tra-cuu-hanh-trinh-don/?code=")]


@dataclass
class Person:
    """One generated contact and the role they play in the story."""

    index: int
    first_name: str
    last_name: str
    email: str | None
    phone: str | None
    city: str
    locale: str
    consent: dict[str, dict[str, bool]]
    role: str  # lapsed | cooling | customer | lead

    @property
    def external_id(self) -> str:
        """The shop's customer id."""
        return f"cus_{self.index:05d}"

    def contact(self, full: bool = True) -> dict[str, Any]:
        """The native-format contact object (``full``: with consent and attributes)."""
        data: dict[str, Any] = {
            "external_id": self.external_id,
            "first_name": self.first_name,
            "last_name": self.last_name,
        }
        if full:  # shops send consent and profile with the first event about a person
            data.update(locale=self.locale, attributes={"city": self.city}, consent=self.consent)
        if self.email:
            data["email"] = self.email
        if self.phone:
            data["phone"] = self.phone
        return data


@dataclass(order=True)
class Planned:
    """One shop event at a time, as a native payload."""

    at: datetime
    seq: int
    payload: dict[str, Any] = field(compare=False)


def _weighted(rng: random.Random, pairs: list[tuple[str, int]]) -> str:
    return rng.choices([p for p, _ in pairs], weights=[w for _, w in pairs])[0]


def ascii_slug(text: str) -> str:
    """Vietnamese text without diacritics, lower-case (Nguyễn Thị Hương -> nguyen thi huong)."""
    text = text.replace("Đ", "D").replace("đ", "d")
    decomposed = unicodedata.normalize("NFD", text)
    return "".join(c for c in decomposed if unicodedata.category(c) != "Mn").lower()


def make_people(rng: random.Random, count: int) -> list[Person]:
    """``count`` Vietnamese contacts with names, addresses, consents and a role."""
    people: list[Person] = []
    used_phones: set[str] = set()
    used_emails: set[str] = set()
    roles = ["lapsed"] * 24 + ["cooling"] * 10 + ["customer"] * 30 + ["lead"] * 36
    for index in range(1, count + 1):
        female = rng.random() < 0.58
        family = _weighted(rng, FAMILY)
        middle = rng.choice(MIDDLE_FEMALE if female else MIDDLE_MALE)
        given = rng.choice(GIVEN_FEMALE if female else GIVEN_MALE)
        phone = None
        if rng.random() < 0.92:
            while True:
                phone = rng.choice(PHONE_PREFIXES) + f"{rng.randrange(10**7):07d}"
                if phone not in used_phones:
                    used_phones.add(phone)
                    break
        email = None
        if rng.random() < 0.85 or phone is None:
            base = f"{ascii_slug(given)}.{ascii_slug(family)}"
            email = f"{base}{rng.randrange(70, 100)}@{rng.choice(EMAIL_DOMAINS)}"
            while email in used_emails:
                email = f"{base}{rng.randrange(1000)}@{rng.choice(EMAIL_DOMAINS)}"
            used_emails.add(email)
        consent = {
            "email": {"marketing": rng.random() < 0.8, "transactional": True},
            "sms": {"marketing": rng.random() < 0.6, "transactional": True},
            "zalo": {"marketing": rng.random() < 0.7, "transactional": True},
        }
        people.append(
            Person(
                index=index,
                first_name=given,
                last_name=f"{family} {middle}",
                email=email,
                phone=phone,
                city=_weighted(rng, CITIES),
                locale="en" if rng.random() < 0.06 else "vi",
                consent=consent,
                role=rng.choice(roles),
            )
        )
    return people


class Story:
    """Builds the timeline of shop events for a set of people over ``days`` days."""

    def __init__(self, rng: random.Random, start: datetime, days: int) -> None:
        self.rng = rng
        self.start = start
        self.end = start + timedelta(days=days)
        self.history: list[Planned] = []  # before the playbooks are applied
        self.events: list[Planned] = []  # during the simulated month
        self._seq = 0
        self._introduced: set[int] = set()
        self._orders = 0
        self._carts = 0

    # -- helpers ------------------------------------------------------------------------

    def _add(self, target: list[Planned], at: datetime, type_: str, person: Person,
             properties: dict[str, Any]) -> None:
        self._seq += 1
        payload = {
            "id": f"demo-{self._seq:07d}",
            "type": type_,
            "occurred_at": at.isoformat(),
            "contact": person.contact(full=person.index not in self._introduced),
            "properties": properties,
        }
        self._introduced.add(person.index)
        target.append(Planned(at, self._seq, payload))

    def _items(self) -> list[dict[str, Any]]:
        picks = self.rng.sample(PRODUCTS, k=self.rng.choice([1, 1, 1, 2, 2, 3]))
        return [
            {"sku": sku, "name": name, "quantity": self.rng.choice([1, 1, 1, 2]), "price": price}
            for sku, name, price in picks
        ]

    def _daytime(self, day_start: datetime) -> datetime:
        """A shopping time on that day: 08:00-23:00 Vietnam time (01:00-16:00 UTC)."""
        return day_start + timedelta(hours=1 + self.rng.random() * 15)

    def _when(self, lo_days: float, hi_days: float) -> datetime:
        day = self.start + timedelta(days=int(lo_days + self.rng.random() * (hi_days - lo_days)))
        return self._daytime(day)

    # -- stories ------------------------------------------------------------------------

    def order(self, target: list[Planned], person: Person, at: datetime,
              items: list[dict[str, Any]] | None = None, checkout_token: str | None = None,
              lifecycle: bool = True) -> None:
        """order.created, then (unless cancelled) paid, shipped and delivered."""
        self._orders += 1
        items = items or self._items()
        order_id = f"{10000 + self._orders}"
        base = {
            "order_id": order_id,
            "order_number": f"#{order_id}",
            "total": sum(i["price"] * i["quantity"] for i in items) + 30000,  # + shipping
            "currency": "VND",
            "items": items,
        }
        if checkout_token:
            base["checkout_token"] = checkout_token
        self._add(target, at, "order.created", person, {**base, "status": "open"})
        if not lifecycle:  # imported history: the order counts from creation
            return
        if self.rng.random() < 0.07:
            self._add(target, at + timedelta(hours=2 + self.rng.random() * 20),
                      "order.cancelled", person, {**base, "status": "cancelled"})
            return
        cod = self.rng.random() < 0.55  # cash on delivery: paid when delivered
        paid_at = at + timedelta(minutes=5 + self.rng.random() * 120)
        shipped_at = at + timedelta(hours=18 + self.rng.random() * 30)
        delivered_at = shipped_at + timedelta(hours=30 + self.rng.random() * 60)
        if cod:
            paid_at = delivered_at + timedelta(minutes=10)
        carrier, url = self.rng.choice(CARRIERS)
        code = f"{carrier[:2].upper()}{self.rng.randrange(10**8):08d}"
        shipping = {"carrier": carrier, "tracking_number": code, "tracking_url": url + code}
        self._add(target, shipped_at, "order.shipped", person, {**base, **shipping})
        self._add(target, delivered_at, "order.delivered", person, {**base, **shipping})
        self._add(target, paid_at, "order.paid", person, {**base, "status": "paid"})

    def checkout(self, person: Person, at: datetime, outcome: str) -> None:
        """checkout.started; then an order soon (bought), later (recovered) or never."""
        self._carts += 1
        items = self._items()
        cart_id = f"ck_{self._carts:05d}"
        self._add(self.events, at, "checkout.started", person, {
            "cart_id": cart_id,
            "total": sum(i["price"] * i["quantity"] for i in items),
            "currency": "VND",
            "items": items,
            "recovery_url": f"https://shop.example.vn/checkouts/{cart_id}/recover",
        })  # fmt: skip
        if outcome == "bought":
            self.order(self.events, person, at + timedelta(minutes=5 + self.rng.random() * 30),
                       items, cart_id)
        elif outcome == "recovered":  # after the 1 h abandonment window and the reminder
            self.order(self.events, person, at + timedelta(hours=2.5 + self.rng.random() * 18),
                       items, cart_id)

    def backdated_orders(self, person: Person, lo_days: int, hi_days: int, count: int) -> None:
        """Past orders (history imported before the playbooks are applied)."""
        for _ in range(count):
            ago = lo_days + self.rng.random() * (hi_days - lo_days)
            at = self._daytime(self.start - timedelta(days=int(ago) + 1))
            self.order(self.history, person, at, lifecycle=False)

    def person(self, person: Person) -> None:
        """The story of one contact according to their role."""
        rng = self.rng
        span = (self.end - self.start).days
        if person.role == "lapsed":  # last order 95-300 days ago
            self.backdated_orders(person, 95, 300, rng.choice([1, 1, 2, 3]))
            if rng.random() < 0.12:  # comes back after the win-back offer
                self.checkout(person, self._when(6, max(7, span - 1)), "bought")
        elif person.role == "cooling":  # last order 60-89 days ago: lapses during the month
            self.backdated_orders(person, 60, 60 + min(span, 29), rng.choice([1, 2]))
        elif person.role == "customer":
            self.backdated_orders(person, 5, 50, rng.choice([1, 2, 3]))
            for _ in range(rng.choice([0, 1, 1, 2])):
                outcome = rng.choices(["bought", "abandoned", "recovered"], [55, 30, 15])[0]
                self.checkout(person, self._when(0, span), outcome)
        else:  # a lead captured during the month
            captured = self._when(0, max(1, span - 2))
            self._add(self.events, captured, "lead.captured", person,
                      {"form": rng.choice(FORMS)})
            fate = rng.random()
            if fate < 0.25:  # buys with the welcome code within 3 days
                at = captured + timedelta(hours=2 + rng.random() * 60)
                self.checkout(person, at, rng.choices(["bought", "recovered"], [75, 25])[0])
            elif fate < 0.40:  # abandons a cart, never buys
                self.checkout(person, captured + timedelta(hours=1 + rng.random() * 40),
                              "abandoned")
            elif fate < 0.52:  # buys during the nurture series
                self.checkout(person, captured + timedelta(days=4, hours=rng.random() * 96),
                              "bought")

    def build(self, people: list[Person]) -> None:
        """The whole story; both timelines sorted by time."""
        for person in people:
            self.person(person)
        self.history.sort()
        self.events = sorted(p for p in self.events if p.at < self.end)
