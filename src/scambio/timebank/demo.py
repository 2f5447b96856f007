"""The demo community: Milano Sei l'Altro's Zones 4 and 6 after four months of use.

`make run` on an empty database seeds it (`scambio demo seed --if-empty`), so that a first
look at Scambio shows a living timebank: about forty members with Italian names, three
companies with employees, two nonprofits, a community manager and an auditor, offers and
requests in all six areas (a company's meeting room and a digital-skills session among
them), and a few months of exchanges in every state the workflow has.

Everything happens through the services people use, never by inserting rows: members
register and a manager approves them, organisation admins propose employee links and the
workers accept, exchanges are proposed, accepted, done, confirmed, disputed and resolved,
and the nightly jobs (hold expiry, auto-confirmation, listing expiry and reminders, the
sponsorship policies) run every simulated night. The example policies in `policies/` name
the three companies by the fixed ids the seed gives them: Lorenteggio Digitale's admin
enrols its staff in its childcare grant, and two of them pay a babysitter partly with it;
Corvetto Logistica matches its staff's volunteering; Officine Calvairate donates the
hours its staff give on company time.

People act through `Principal`s the real way: the seed issues each acting member a token
named "demo seed", authenticates it as the API would, and revokes it at the end.

Time: the ledger stamps each batch with its service's clock, so the seed runs its own
ledger service on a `SeedClock` that starts about four months ago and only moves forward,
stopping before the real time at which the seed began: entry times never go backwards,
and live use continues after them. The community is drawn with a fixed random seed, so
every database gets the same people, listings and stories (dates are relative to today;
ids the services generate are random). Demo mail is delivered to the seed's log (never to
SMTP) as the simulated days pass.

Who acts, and what each story needs, is planned first (`plan`), with a projection of every
account's balance so that no one is ever asked to pay beyond their credit limit; then the
plan is played in time order (`Seeder.run`).
"""

from __future__ import annotations

import random
import unicodedata
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Final

import msgspec
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from scambio.ledger.entry import format_time
from scambio.ledger.errors import RuleViolation
from scambio.ledger.note import Signer
from scambio.policy import runner as policy_runner
from scambio.policy import views as policy_views
from scambio.policy.loader import apply_directory
from scambio.settings import Settings
from scambio.store.commands import Transfer
from scambio.store.exchanges_tables import exchange_thanks, exchanges, group_exchanges
from scambio.store.ledger import LedgerService, require
from scambio.store.listings_tables import introductions, listings
from scambio.store.people_tables import employee_links, members, organisations
from scambio.store.tables import accounts, ledger_head
from scambio.store.tokens import (
    SCOPES,
    Principal,
    authenticate,
    issue_member_token,
    revoke_member_token,
)
from scambio.timebank import authz, matching, orgs, people
from scambio.timebank import demo_data as data
from scambio.timebank import exchange_rules as rules
from scambio.timebank import exchanges as xch
from scambio.timebank import listings as board
from scambio.timebank.areas import CHILDCARE, HEALTH_WELLBEING, HOUSING, TRAINING_EMPOWERMENT
from scambio.timebank.audit import Actor
from scambio.timebank.context import Timebank
from scambio.timebank.db import reading, stamp, writing
from scambio.timebank.listings import MEMBER, ORGANISATION, Owner
from scambio.timebank.passwords import Passwords

#: DEMO ONLY. Every demo member who can log in has this password; it is printed by
#: `scambio demo seed` and written in the README. Never seed a real community.
DEMO_PASSWORD: Final = "scambio-demo"  # noqa: S105 - the published demo password
EMAIL_DOMAIN: Final = "example.org"
MANAGER_EMAIL: Final = f"{data.MANAGER.key}@{EMAIL_DOMAIN}"
#: The random seed of the community: change it and you get other people and stories.
SEED: Final = 20_250_604
#: How far back the demo's history starts, in days.
HISTORY_DAYS: Final = 120
#: The credit limit the demo's stories are planned against (the issue's default), and the
#: margin kept above it.
CREDIT_LIMIT: Final = 600
MARGIN: Final = 60
DRAWN_MEMBERS: Final = 29
TOKEN_NAME: Final = "demo seed"  # noqa: S105 - a token's label
SEED_ACTOR: Final = Actor("cli (scambio demo seed)")
POOL: Final = xch.DEFAULT_POOL
#: Fixed organisation ids: the example sponsorship policies in `policies/` name the three
#: companies by these (a policy names its sponsor by id).
DEMO_ORG_IDS: Final = {
    "lorenteggio-digitale": "a1b2c3d4e5f60001",
    "officine-calvairate": "a1b2c3d4e5f60002",
    "corvetto-logistica": "a1b2c3d4e5f60003",
    "genitori-giambellino": "a1b2c3d4e5f60004",
    "cooperativa-il-ponte": "a1b2c3d4e5f60005",
}
#: The example grant policy the demo enrols Lorenteggio Digitale's employees in.
DEMO_GRANT: Final = "lorenteggio-care-grant"


class SeedClock:
    """The seed's clock: moved forward by hand, never backwards, never past `cap`."""

    def __init__(self, start: datetime, cap: datetime) -> None:
        self.start = start
        self.cap = cap
        self._now = min(start, cap)

    def __call__(self) -> datetime:
        return self._now

    def at_day(self, day: float) -> datetime:
        return self.start + timedelta(days=day)

    def move_to(self, when: datetime) -> None:
        self._now = max(self._now, min(when, self.cap))


def history_start(now: datetime) -> datetime:
    """08:00 UTC on the day `HISTORY_DAYS` before `now`: day 119's evening is before now."""
    first = now - timedelta(days=HISTORY_DAYS)
    return first.replace(hour=8, minute=0, second=0, microsecond=0)


def t(day: float, hour: int, minute: int = 0) -> float:
    """A moment of the plan, in days since the start (which is 08:00 of day 0)."""
    return day + (hour - 8) / 24 + minute / 1440


LAST: Final = t(HISTORY_DAYS - 1, 23, 50)
KEY_KEYS: Final = frozenset(persona.key for persona in data.KEY_PEOPLE)


# -- the plan's cast ---------------------------------------------------------------------------


@dataclass(eq=False)
class Person:
    key: str
    name: str
    zone: str
    areas: tuple[str, ...]
    about: str
    languages: tuple[str, ...]
    slots: tuple[tuple[str, str, str], ...] = ()
    tags: tuple[str, ...] = ()
    role: str = "member"
    online: bool = True
    #: When they register (or are created), and when they are approved (None: pending).
    joins: float = 0.0
    approved: float | None = None
    note: str = ""
    member_id: str | None = None
    token: str | None = None

    @property
    def email(self) -> str | None:
        return f"{self.key}@{EMAIL_DOMAIN}" if self.online else None

    @property
    def account(self) -> str:
        assert self.member_id is not None, f"{self.name} has not joined yet"
        return people.member_account_id(self.member_id)

    @property
    def acting(self) -> Person:
        return self

    @property
    def owner(self) -> Owner:
        assert self.member_id is not None
        return Owner(MEMBER, self.member_id)

    @property
    def can_act(self) -> bool:
        """A member who uses Scambio themselves (not staff, not offline)."""
        return self.role == "member" and self.online

    def active_by(self, when: float) -> bool:
        return self.approved is not None and self.approved < when


@dataclass(eq=False)
class Org:
    text: data.OrgText
    admin: Person
    created: float
    employees: list[tuple[Person, str]] = field(default_factory=list)
    org_id: str | None = None

    @property
    def name(self) -> str:
        return self.text.name

    @property
    def zone(self) -> str:
        return self.text.zone

    @property
    def account(self) -> str:
        assert self.org_id is not None
        return orgs.org_account_id(self.org_id)

    @property
    def acting(self) -> Person:
        return self.admin

    @property
    def owner(self) -> Owner:
        assert self.org_id is not None
        return Owner(ORGANISATION, self.org_id)


Party = Person | Org


@dataclass(eq=False)
class Post:
    """A listing the plan posts."""

    text: data.ListingText
    owner: Party
    posted: float
    listing_id: str | None = None
    closes: float | None = None
    close_reason: str = ""
    #: A request that an exchange is already planned for.
    taken: bool = False
    #: Renewed before it lapses, for as long as the history runs (offers, mostly).
    renewed: bool = False

    def live(self, day: float) -> bool:
        """Posted, not lapsed and not closed by `day`."""
        lapsed = not self.renewed and day > self.posted + 59
        closed = self.closes is not None and day >= self.closes
        return self.posted < day - 0.5 and not lapsed and not closed


@dataclass(eq=False)
class Story:
    """One exchange: who, how much, and (in the plan) when each move happens."""

    exchange_id: str
    provider: Party | None
    receiver: Party
    proposer: str
    minutes: int
    title: str
    area: str | None
    post: Post | None = None

    def party(self, side: str) -> Party:
        party = self.provider if side == rules.PROVIDER else self.receiver
        assert party is not None, "the provider is chosen by the manager's introduction"
        return party

    @property
    def counterpart(self) -> str:
        return rules.RECEIVER if self.proposer == rules.PROVIDER else rules.PROVIDER


@dataclass(eq=False)
class GroupStory:
    group_id: str
    title: str
    description: str
    area: str
    zone: str
    minutes: int
    facilitators: list[Party]
    participants: list[tuple[Person, str]]
    absent: list[Person] = field(default_factory=list)


class Budget:
    """A projection of every account's available balance, to plan only payable stories.

    Conservative: a payer's every planned debit counts from the start, and a credit only
    from when it is planned to arrive. A new debit at time T is allowed if the credits
    that arrive by T, less all debits (this one included), stay above the floor; that
    keeps every earlier-planned debit payable too (see the module docstring).
    """

    def __init__(self, floor: int) -> None:
        self.floor = floor
        self.credits: dict[object, list[tuple[float, int]]] = {}
        self.debits: dict[object, int] = {}

    def _floor(self, party: object) -> int:
        return 0 if party == POOL else self.floor

    def available(self, party: object, when: float) -> int:
        earned = sum(m for at, m in self.credits.get(party, []) if at <= when)
        return earned - self.debits.get(party, 0)

    def can_pay(self, party: object, when: float, minutes: int) -> bool:
        return self.available(party, when) - minutes >= self._floor(party)

    def debit(self, party: object, when: float, minutes: int) -> None:
        if not self.can_pay(party, when, minutes):
            name = getattr(party, "name", party)
            raise AssertionError(f"demo plan: {name} cannot pay {minutes} minutes at {when:.1f}")
        self.debits[party] = self.debits.get(party, 0) + minutes

    def credit(self, party: object, when: float, minutes: int) -> None:
        self.credits.setdefault(party, []).append((when, minutes))


# -- drawing the community ---------------------------------------------------------------------


def email_key(name: str) -> str:
    """'Niccolò D'Angelo' -> 'niccolo.dangelo'."""
    folded = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    words = ["".join(c for c in word.lower() if c.isalnum()) for word in folded.split()]
    first, *rest = [w for w in words if w]
    return f"{first}.{''.join(rest)}"


def _uuid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def _person(persona: data.Persona) -> Person:
    return Person(
        key=persona.key,
        name=persona.name,
        zone=persona.zone,
        areas=persona.areas,
        about=persona.about,
        languages=persona.languages,
        slots=persona.slots,
        tags=persona.tags,
        role=persona.role,
        online=persona.online,
    )


def draw_people(
    rng: random.Random, count: int, taken: set[str]
) -> list[tuple[Person, data.Profile]]:
    """`count` members with a skill profile each; a few of them newcomers to Italy."""
    profiles = list(data.PROFILES) * (count // len(data.PROFILES) + 1)
    rng.shuffle(profiles)
    newcomers = list(data.NEWCOMERS)
    drawn: list[tuple[Person, data.Profile]] = []
    for position, profile in enumerate(profiles[:count]):
        languages: tuple[str, ...] = ("it",)
        if newcomers and position % 7 == 3 and profile.gender is None:
            name, languages = newcomers.pop(0)
        else:
            while True:
                gender = profile.gender or rng.choice("fm")
                first = rng.choice(data.FIRST_NAMES_F if gender == "f" else data.FIRST_NAMES_M)
                name = f"{first} {rng.choice(data.SURNAMES)}"
                if email_key(name) not in taken:
                    break
            if rng.random() < 0.25:
                languages = ("it", "en")
        taken.add(email_key(name))
        zone = data.ZONES[position % 2]
        place = rng.choice(data.NEIGHBOURHOODS[zone])
        drawn.append(
            (
                Person(
                    key=email_key(name),
                    name=name,
                    zone=zone,
                    areas=profile.areas,
                    about=f"{profile.about} Abito a {place}.",
                    languages=languages,
                    slots=tuple(rng.sample(data.SLOT_CHOICES, k=rng.choice((1, 2)))),
                    tags=profile.tags,
                ),
                profile,
            )
        )
    return drawn


@dataclass
class Plan:
    """Everything the seed will do, as timed acts, and whom it involves."""

    rng: random.Random
    people: list[Person] = field(default_factory=list)
    orgs: list[Org] = field(default_factory=list)
    posts: list[Post] = field(default_factory=list)
    stories: list[Story] = field(default_factory=list)
    groups: list[GroupStory] = field(default_factory=list)
    acts: list[tuple[float, int, str, tuple[Any, ...]]] = field(default_factory=list)
    budget: Budget = field(default_factory=lambda: Budget(MARGIN - CREDIT_LIMIT))
    by_key: dict[str, Person] = field(default_factory=dict)

    def at(self, when: float, act: str, *args: Any) -> None:
        assert 0 <= when <= LAST, f"{act} planned at day {when:.2f}, outside the history"
        self.acts.append((when, len(self.acts), act, args))

    def person(self, key: str) -> Person:
        return self.by_key[key]

    def add(self, person: Person) -> Person:
        self.people.append(person)
        self.by_key[person.key] = person
        return person

    def post(self, text: data.ListingText, owner: Party, when: float) -> Post:
        keeps = isinstance(owner, Org) or owner.key in KEY_KEYS or self.rng.random() < 0.85
        post = Post(text, owner, when, renewed=text.kind == "offer" and keeps)
        self.posts.append(post)
        self.at(when, "post", post)
        return post

    # -- exchanges ---------------------------------------------------------------------

    def story(
        self,
        provider: Party | None,
        receiver: Party,
        minutes: int,
        *,
        post: Post | None = None,
        proposer: str = rules.RECEIVER,
        title: str | None = None,
        area: str | None = None,
    ) -> Story:
        text = post.text if post is not None else None
        story = Story(
            exchange_id=_uuid(self.rng),
            provider=provider,
            receiver=receiver,
            proposer=proposer,
            minutes=minutes,
            title=title or (text.title if text else "Scambio"),
            area=area or (text.area if text else None),
            post=post,
        )
        self.stories.append(story)
        return story

    def run_story(
        self,
        story: Story,
        *,
        propose: float,
        accept: float | None = None,
        done: float | None = None,
        confirm: float | None = None,
        actual: int | None = None,
        thanks: tuple[str | None, str | None] = (None, None),
        auto_confirm: bool = False,
    ) -> None:
        """Plan a story that goes as far as the moves given; books its minutes."""
        self.at(propose, "propose", story)
        if accept is None:
            return
        self.budget.debit(story.receiver, accept, story.minutes)
        self.at(accept, "accept", story)
        if done is None:
            return
        paid = actual if actual is not None else story.minutes
        self.at(done, "done", story, paid)
        if confirm is not None:
            self.at(confirm, "confirm", story)
        elif auto_confirm:
            confirm = done + 8  # the nightly job, the night after the confirmation period
        else:
            return
        if story.provider is not None:
            self.budget.credit(story.provider, confirm, paid)
        receiver_thanks, provider_thanks = thanks
        if receiver_thanks:
            self.at(confirm + 0.02, "thank", story, rules.RECEIVER, receiver_thanks)
        if provider_thanks:
            self.at(confirm + 0.3, "thank", story, rules.PROVIDER, provider_thanks)
        if story.post is not None and story.post.text.kind == "request":
            story.post.closes = confirm + 0.4
            story.post.close_reason = "Ho trovato aiuto, grazie!"


def _minutes(rng: random.Random, text: data.ListingText | None) -> int:
    return rng.choice(text.minutes if text else (60, 90, 120))


def _hour(rng: random.Random, day: int, first: int = 9, last: int = 20) -> float:
    return t(day, rng.randint(first, last), rng.choice((0, 15, 30, 45)))


def _pick(rng: random.Random, weighted: list[tuple[Any, float]]) -> Any:
    items = [item for item, _ in weighted]
    return rng.choices(items, weights=[w for _, w in weighted], k=1)[0]


def plan(rng: random.Random) -> Plan:
    """The whole demo: who joins when, what they post, and every exchange's course."""
    p = Plan(rng)
    taken = {persona.key for persona in data.KEY_PEOPLE}
    for key_persona in data.KEY_PEOPLE:
        p.add(_person(key_persona))
    manager, auditor = p.person(data.MANAGER.key), p.person(data.AUDITOR.key)
    giulia, marco, amina = (p.person(k) for k in ("giulia.bianchi", "marco.rossi", "amina.benali"))
    giuseppina = p.person(data.GIUSEPPINA.key)

    # Day 0: the operator creates the manager and the auditor; the pool opens.
    for person, minute in ((manager, 0), (auditor, 5)):
        person.joins = person.approved = t(0, 9, minute)
        p.at(person.joins, "create_staff", person)
    p.at(t(0, 9, 10), "open_pool")
    # The example sponsorship policies (policies/) come into force with the community.
    p.at(t(0, 9, 15), "apply_policies")

    # The first week: the organisations' admins and the key members register.
    registrations = {
        data.ELENA.key: t(1, 10),
        data.DAVIDE.key: t(1, 18, 30),
        data.CHIARA.key: t(2, 9, 15),
        data.FRANCESCA.key: t(2, 21),
        data.LUCA.key: t(3, 11),
        giulia.key: t(2, 16),
        marco.key: t(4, 20, 30),
        amina.key: t(5, 10),
    }
    for key, when in registrations.items():
        person = p.person(key)
        person.joins = when
        person.approved = t(int(when) + 1, 9, 30)
        p.at(when, "register", person)
        p.at(person.approved, "approve", person)
    giuseppina.joins = giuseppina.approved = t(9, 11, 30)
    p.at(giuseppina.joins, "create_offline", giuseppina)

    # Drawn members register over the first six weeks; two more are still waiting.
    drawn = draw_people(rng, DRAWN_MEMBERS + 2, taken)
    days = sorted(rng.uniform(3, 45) for _ in range(DRAWN_MEMBERS))
    profiles: dict[Person, data.Profile] = {}
    for (person, profile), day in zip(drawn, [*days, 116.6, 118.9], strict=True):
        p.add(person)
        profiles[person] = profile
        person.joins = t(int(day), 8) + (day - int(day)) * 0.55
        if day < 100:
            person.approved = t(int(day) + 1, 9, 30)
            p.at(person.approved, "approve", person)
        else:
            person.note = "waiting for the manager's approval"
        p.at(person.joins, "register", person)
    members_drawn = [person for person, _ in drawn if person.approved is not None]

    # Organisations, created by the manager the day after their admin is approved.
    for org_text in data.ORGANISATIONS:
        admin = p.person(org_text.admin)
        assert admin.approved is not None
        org = Org(org_text, admin, t(int(admin.approved) + 1, 11))
        p.orgs.append(org)
        p.at(org.created, "create_org", org)
    lorenteggio, officine, corvetto, genitori, ponte = p.orgs
    early = [m for m in members_drawn if m.approved is not None and m.approved < 25]
    rng.shuffle(early)
    for org in p.orgs:
        titles = list(org.text.employee_titles)
        if not titles:
            continue
        org.employees.append((org.admin, titles.pop(0)))
        for title in titles:
            org.employees.append((early.pop(), title))
        for worker, title in org.employees:
            assert worker.approved is not None
            proposed = t(int(max(org.created, worker.approved)) + 1, 12)
            p.at(proposed, "propose_link", org, worker, title)
            p.at(proposed + 0.3, "accept_link", org, worker)
            if org.text.key == "lorenteggio-digitale":
                # Its admin enrols its staff in its childcare and elder-care grant.
                p.at(proposed + 0.35, "enrol", org, worker)
    newcomer = next(m for m in members_drawn if m.approved is not None and m.approved > 30)
    newcomer.note = "has an employee link from Lorenteggio Digitale to accept"
    p.at(t(117, 12), "propose_link", lorenteggio, newcomer, "Tirocinante")

    # What people and organisations offer and ask.
    member_posts: dict[Person, list[Post]] = {}
    requests_in_turn = list(data.REQUESTS)
    for person in p.people:
        if person.approved is None or not person.can_act:
            continue
        written = next((x for x in data.KEY_PEOPLE if x.key == person.key), None)
        offers = written.offers if written else (profiles[person].offer,)
        for n, offer_text in enumerate(offers):
            when = person.approved + 0.2 + rng.uniform(0, 1.5) + n
            member_posts.setdefault(person, []).append(p.post(offer_text, person, when))
        if written is not None:
            for request_text in written.requests:
                when = person.approved + 0.5 if person is marco else person.approved + 15
                member_posts.setdefault(person, []).append(p.post(request_text, person, when))
        elif rng.random() < 0.55:
            # The requests in turn (skipping the asker's own areas): every area gets some.
            asked = next(r for r in requests_in_turn if r.area not in person.areas)
            requests_in_turn.remove(asked)
            requests_in_turn.append(asked)
            when = rng.uniform(person.approved + 3, 95)
            member_posts.setdefault(person, []).append(p.post(asked, person, when))
    org_posts: dict[Org, list[Post]] = {}
    for org in p.orgs:
        for n, org_listing in enumerate(org.text.listings):
            when = org.created + 1 + n * 1.5 + rng.uniform(0, 1)
            org_posts.setdefault(org, []).append(p.post(org_listing, org, when))
    giulia_offer = member_posts[giulia][0]
    marco_request = next(x for x in member_posts[marco] if x.text.kind == "request")
    room = org_posts[officine][0]
    digital = org_posts[lorenteggio][0]
    van = org_posts[corvetto][0]
    parents_group = org_posts[genitori][1]
    festa = org_posts[genitori][2]

    # -- the worked example: Giulia helps Marco's son with maths, once a month --------------
    marco_request.taken = True
    p.at(t(9, 10), "introduce", marco_request, giulia, giulia_offer, "Giulia abita a due passi.")
    first = p.story(giulia, marco, 90, post=marco_request, proposer=rules.PROVIDER)
    p.run_story(
        first,
        propose=t(10, 18),
        accept=t(10, 21),
        done=t(14, 18, 30),
        confirm=t(14, 21),
        thanks=(
            "Luca ha preso 7 e mezzo nella verifica di matematica. Grazie Giulia!",
            "Luca è sveglissimo, è stato un piacere.",
        ),
    )
    for day, thanks in ((42, "Anche questa volta: grazie!"), (71, None), (101, "Sempre preziosa.")):
        again = p.story(giulia, marco, 90, post=giulia_offer)
        p.run_story(
            again,
            propose=t(day, 20),
            accept=t(day + 1, 9),
            done=t(day + 3, 18, 30),
            confirm=t(day + 3, 21, 15),
            thanks=(thanks, None),
        )
    latest = p.story(giulia, marco, 90, post=giulia_offer)
    p.run_story(latest, propose=t(112, 20), accept=t(113, 8, 30), done=t(117, 18, 45))
    marco.note = "has an exchange marked done to confirm"
    giulia.note = "offers homework help; an exchange awaits Marco's confirmation"

    # -- sponsored care: an employee of Lorenteggio Digitale pays a babysitter partly with
    # the hours her employer's grant gives her (four a month, childcare and elder care).
    sitters = [
        x
        for posts in member_posts.values()
        for x in posts
        if x.text.kind == "offer"
        and x.text.area == CHILDCARE
        and isinstance(x.owner, Person)
        and not x.owner.note
    ]
    parents = [w for w, _title in lorenteggio.employees if not w.note]
    if sitters and parents:
        for day, parent in zip((62, 88), parents[-2:], strict=False):
            sitter = sitters[day % len(sitters)]
            if sitter.owner is parent:
                continue
            care = p.story(sitter.owner, parent, 180, post=sitter)
            p.run_story(
                care,
                propose=t(day, 19),
                accept=t(day, 21),
                done=t(day + 2, 23),
                confirm=t(day + 3, 8),
                thanks=("Grazie, i bambini ti adorano!", None),
            )

    # -- the organisations ------------------------------------------------------------------
    for org, day, minutes in ((officine, 31, 300), (corvetto, 36, 240)):
        p.budget.debit(org, t(day, 10), minutes)
        p.budget.credit(POOL, t(day, 10), minutes)
        p.at(t(day, 10), "donate", org, minutes, _uuid(rng))
    for day, receiver, thanks in (
        (24, genitori, "Grazie per la sala: diciotto genitori all'incontro sull'adolescenza!"),
        (57, ponte, "Sala perfetta per la formazione dei nostri volontari."),
        (84, genitori, None),
    ):
        booking = p.story(officine, receiver, 180, post=room)
        p.run_story(
            booking,
            propose=t(day, 11),
            accept=t(day, 16),
            done=t(day + 6, 22),
            confirm=t(day + 7, 9),
            thanks=(thanks, None),
        )
    for n, day in enumerate((20, 48, 77)):
        attendee = _pick(
            rng,
            [
                (m, 1.0)
                for m in members_drawn
                if m.active_by(day - 1) and m.zone == data.ZONE_6 and not m.note
            ],
        )
        meeting = p.story(genitori, attendee, 90, post=parents_group)
        p.run_story(
            meeting,
            propose=t(day, 10),
            accept=t(day, 18),
            done=t(day + 2, 19),
            confirm=t(day + 2, 21),
            thanks=("Mi sono sentita meno sola. Grazie!" if n == 0 else None, None),
        )
    festa.taken = True
    volunteer = _pick(rng, [(m, 1.0) for m in members_drawn if m.active_by(40) and not m.note])
    help_festa = p.story(volunteer, genitori, 180, post=festa, proposer=rules.PROVIDER)
    p.run_story(
        help_festa,
        propose=t(40, 12),
        accept=t(43, 9),
        done=t(50, 20),
        confirm=t(51, 10),
        thanks=("Grazie! Senza di te lo stand dei giochi non ci sarebbe stato.", None),
    )
    elder_company = org_posts[ponte][1]
    for day in (30, 65):
        visitor = _pick(
            rng,
            [
                (m, 1.0)
                for m in members_drawn
                if m.active_by(day - 1) and m.zone == data.ZONE_4 and not m.note
            ],
        )
        visit = p.story(visitor, ponte, 90, post=elder_company, proposer=rules.PROVIDER)
        p.run_story(
            visit,
            propose=t(day, 10),
            accept=t(day, 15),
            done=t(day + 3, 18),
            confirm=t(day + 4, 10),
            thanks=("La signora Maria non parla d'altro: grazie della visita!", None),
        )
    movers = [
        x
        for posts in member_posts.values()
        for x in posts
        if x.text.kind == "request" and x.text.area == HOUSING and not x.taken
    ]
    mover_post = movers[0] if movers else None
    mover = mover_post.owner if mover_post else members_drawn[0]
    assert isinstance(mover, Person)
    moving = p.story(corvetto, mover, 180, post=van, title=van.text.title)
    if mover_post is not None:
        mover_post.taken = True
    move_day = max(int(van.posted) + 5, int(mover.approved or 0) + 2, 60)
    p.run_story(
        moving,
        propose=t(move_day, 9),
        accept=t(move_day, 14),
        done=t(move_day + 4, 18),
        confirm=t(move_day + 4, 20),
        thanks=("Furgone puntuale e autista gentilissimo. Grazie Corvetto Logistica!", None),
    )

    # -- Giuseppina, helped at home; the manager records it from the paper forms ------------
    helpers = {
        profile.offer.title: person
        for person, profile in profiles.items()
        if person.approved is not None and person.zone == data.ZONE_4
    }
    for day, title, minutes in (
        (21, "Spesa e commissioni per chi non può uscire", 60),
        (49, "Accompagnamento a una visita medica", 120),
        (91, "Compagnia e passeggiate con persone anziane", 90),
    ):
        helper = helpers.get(title) or _pick(
            rng, [(m, 1.0) for m in members_drawn if m.zone == data.ZONE_4 and m.active_by(day)]
        )
        story = p.story(helper, giuseppina, minutes, title=title, area=HEALTH_WELLBEING)
        p.budget.debit(giuseppina, t(day, 17), minutes)
        p.budget.credit(helper, t(day, 17), minutes)
        p.at(t(day, 17), "record", story, day)
    giuseppina.note = "offline: the manager records her exchanges"

    # -- group exchanges: two urban labs and a digital-skills session ------------------------
    lab_people = [m for m in members_drawn if m.zone == data.ZONE_6 and m.active_by(60)]
    rng.shuffle(lab_people)
    facilitator = lab_people.pop()
    lab = GroupStory(
        _uuid(rng),
        "Laboratorio urbano: il cortile condiviso di via Odazio",
        "Tre ore per progettare insieme il cortile: orto, panchine, spazio giochi. Con i "
        "disegni dei bambini e la planimetria del Comune.",
        HOUSING,
        data.ZONE_6,
        150,
        [p.person(data.FRANCESCA.key), facilitator],
        [],
    )
    lab_day = 75
    for person in lab_people[:8]:
        paid_by = rules.SELF
        if not p.budget.can_pay(person, t(lab_day, 21), 60) or len(lab.participants) < 3:
            paid_by = rules.POOL
        lab.participants.append((person, paid_by))
    lab.absent = [lab.participants[-1][0]]
    _book_group(p, lab, t(lab_day, 21))
    p.at(t(lab_day - 7, 10), "create_group", lab)
    p.at(t(lab_day, 21), "settle_group", lab)

    seniors = [m for m in members_drawn if m.active_by(85)]
    rng.shuffle(seniors)
    skills = GroupStory(
        _uuid(rng),
        "Sessione di competenze digitali: SPID e Fascicolo Sanitario",
        "Due ore con il personale di Lorenteggio Digitale, pagate dal fondo comune.",
        TRAINING_EMPOWERMENT,
        data.ZONE_6,
        120,
        [lorenteggio],
        [(giuseppina, rules.POOL)] + [(m, rules.POOL) for m in seniors[:4]],
    )
    _book_group(p, skills, t(90, 18))
    p.at(t(86, 10), "create_group", skills)
    p.at(t(90, 18), "settle_group", skills)

    corvetto_people = [m for m in members_drawn if m.zone == data.ZONE_4]
    rng.shuffle(corvetto_people)
    square = GroupStory(
        _uuid(rng),
        "Laboratorio urbano Corvetto: la piazza che vorrei",
        "Il Municipio 4 ridisegna piazzale Gabriele Rosa: portiamo le nostre idee. Sabato "
        "prossimo dalle 10 alle 13 alla sala di Officine Calvairate.",
        HOUSING,
        data.ZONE_4,
        180,
        [p.person(data.LUCA.key), corvetto_people[0]],
        [(m, rules.POOL if n < 2 else rules.SELF) for n, m in enumerate(corvetto_people[1:10])],
    )
    p.at(t(117, 10), "create_group", square)
    p.groups += [lab, skills, square]

    # -- the manager's introductions from the queue of requests ----------------------------
    open_requests = [
        x
        for posts in member_posts.values()
        for x in posts
        if x.text.kind == "request" and not x.taken and 12 < x.posted < 80
    ]
    rng.shuffle(open_requests)
    for request in open_requests[:3]:
        asker = request.owner
        assert isinstance(asker, Person)
        minutes = _minutes(rng, request.text)
        day = int(request.posted) + 1
        if not p.budget.can_pay(asker, t(day + 1, 21), minutes):
            continue
        request.taken = True
        story = p.story(None, asker, minutes, post=request, proposer=rules.PROVIDER)
        p.at(t(day, 10), "introduce", request, None, None, "Vi presento: potete accordarvi qui.")
        p.at(t(day, 10, 5), "helper_from_introduction", story)
        p.run_story(
            story,
            propose=t(day + 1, 12),
            accept=t(day + 1, 21),
            done=t(day + 4, 19),
            confirm=t(day + 4, 21),
            thanks=(rng.choice(data.THANKS_FROM_RECEIVER), None),
        )

    # -- the everyday exchanges -----------------------------------------------------------
    def candidates(day: float, exclude: set[Person]) -> list[Person]:
        return [
            m
            for m in p.people
            if m.can_act and m.active_by(day - 0.5) and m not in exclude and not m.note
        ]

    def pick_story(day: float, receiver_needs: int | None = None) -> Story | None:
        offers = [
            (x, 3.0 if isinstance(x.owner, Person) else 0.8)
            for x in p.posts
            if x.text.kind == "offer"
            and x.live(day)
            and x.owner is not giuseppina
            and (not isinstance(x.owner, Person) or not x.owner.note)
            and x not in (room, digital, van, parents_group)
        ]
        requests = [
            (x, 1.5)
            for x in p.posts
            if x.text.kind == "request"
            and not x.taken
            and x.live(day)
            and isinstance(x.owner, Person)
            and not x.owner.note
        ]
        for _ in range(20):
            post = _pick(rng, offers + requests)
            minutes = _minutes(rng, post.text)
            accept = day + 0.6
            if post.text.kind == "offer":
                provider: Party = post.owner
                excluded = {provider.acting} | (
                    {e for e, _ in provider.employees} if isinstance(provider, Org) else set()
                )
                pool = [
                    (m, 3.0 if m.zone == getattr(provider, "zone", None) else 1.0)
                    for m in candidates(day, excluded)
                    if p.budget.can_pay(m, accept, minutes + (receiver_needs or 0))
                ]
                if not pool:
                    continue
                receiver: Party = _pick(rng, pool)
                proposer = rules.RECEIVER if rng.random() < 0.7 else rules.PROVIDER
            else:
                receiver = post.owner
                if not p.budget.can_pay(receiver, accept, minutes + (receiver_needs or 0)):
                    continue
                assert isinstance(receiver, Person)
                pool = [
                    (m, 4.0 if post.text.area in m.areas else 0.5)
                    for m in candidates(day, {receiver})
                ]
                provider = _pick(rng, pool)
                proposer = rules.PROVIDER if rng.random() < 0.8 else rules.RECEIVER
                post.taken = True
            return p.story(provider, receiver, minutes, post=post, proposer=proposer)
        return None

    for day in sorted(rng.uniform(14, 104) for _ in range(46)):
        everyday = pick_story(day)
        if everyday is None:
            continue
        propose = _hour(rng, int(day))
        accept = propose + rng.uniform(0.05, 1.2)
        done = accept + rng.uniform(1, 8)
        confirm = done + rng.uniform(0.02, 1.8)
        short = rng.random() < 0.15 and everyday.minutes > 45
        p.run_story(
            everyday,
            propose=propose,
            accept=accept,
            done=done,
            confirm=confirm,
            actual=everyday.minutes - 15 if short else None,
            thanks=(
                rng.choice(data.THANKS_FROM_RECEIVER) if rng.random() < 0.65 else None,
                rng.choice(data.THANKS_FROM_PROVIDER) if rng.random() < 0.25 else None,
            ),
        )

    # -- and every other way an exchange can end (or not yet) ------------------------------
    def sketch(day: float) -> Story:
        story = pick_story(day, receiver_needs=60)
        assert story is not None, f"demo plan: no story possible on day {day}"
        return story

    for day in (114.2, 115.6, 117.3, 118.5):  # proposed, awaiting an answer
        story = sketch(day)
        p.run_story(story, propose=_hour(rng, int(day)))
    for day in (106.4, 109.1, 112.7):  # accepted, to be done
        story = sketch(day)
        propose = _hour(rng, int(day))
        p.run_story(story, propose=propose, accept=propose + 0.4)
    for day, done in ((101.3, 114.8), (104.6, 116.2), (107.2, 118.4)):  # done, to confirm
        story = sketch(day)
        propose = _hour(rng, int(day))
        p.run_story(story, propose=propose, accept=propose + 0.5, done=done)
    story = sketch(69.5)  # the receiver never confirms: the nightly job does
    p.run_story(story, propose=t(69, 10), accept=t(69, 19), done=t(74, 18), auto_confirm=True)
    story = sketch(11.5)  # accepted, never done: the job expires it and releases the hold
    p.run_story(story, propose=t(11, 12), accept=t(12, 18))
    for n, day in enumerate((33.5, 88.2)):  # declined
        story = sketch(day)
        propose = _hour(rng, int(day))
        p.run_story(story, propose=propose)
        p.at(propose + 0.5, "decline", story, data.DECLINE_REASONS[n])
    story = sketch(52.5)  # cancelled by its proposer before an answer
    p.run_story(story, propose=t(52, 10))
    p.at(t(52, 15), "cancel", story, story.proposer, "Ho sbagliato data, la rifaccio.")
    story = sketch(79.5)  # accepted, then cancelled: the hold is released
    p.run_story(story, propose=t(79, 10), accept=t(79, 18))
    p.at(t(81, 9), "cancel", story, rules.PROVIDER, data.CANCEL_REASONS[0])

    # A dispute the manager resolved (half paid), and one still open.
    story = sketch(60.5)
    p.run_story(story, propose=t(60, 10), accept=t(60, 19))
    p.at(t(63, 18), "done", story, story.minutes)
    p.at(t(64, 9), "dispute", story, "Il lavoro è stato fatto solo a metà.")
    half = story.minutes // 2
    p.at(t(66, 11), "resolve", story, half, "Sentite le due parti: si paga metà del tempo.")
    assert story.provider is not None
    p.budget.credit(story.provider, t(66, 11), half)
    story = sketch(110.5)
    p.run_story(story, propose=t(110, 10), accept=t(110, 19))
    p.at(t(114, 18), "done", story, story.minutes)
    p.at(t(115, 9), "dispute", story, "Siamo stati insieme meno della metà del tempo segnato.")
    assert isinstance(story.receiver, Person)
    story.receiver.note = story.receiver.note or "has disputed an exchange (the manager resolves)"

    # -- listings lapse unless renewed; requests close when help is found ------------------
    for post in p.posts:
        end = post.closes if post.closes is not None else LAST
        when = post.posted + 56
        while post.renewed and when < min(end, LAST - 0.1):
            p.at(when, "renew", post)
            when += 56
        if post.closes is not None and post.closes < LAST:
            p.at(post.closes, "close", post)

    # Every night: the scheduled jobs, then the day's mail.
    for day in range(HISTORY_DAYS):
        p.at(t(day, 23, 30), "nightly")
    return p


def _book_group(p: Plan, group: GroupStory, when: float) -> None:
    """Book a group settlement's payments in the budget, as `rules.plan_group` splits it."""
    present = [(m, paid) for m, paid in group.participants if m not in group.absent]
    total = group.minutes * len(group.facilitators)
    base, extra = divmod(total, len(present))
    for position, (person, paid_by) in enumerate(present):
        share = base + (1 if position < extra else 0)
        p.budget.debit(POOL if paid_by == rules.POOL else person, when, share)
    for facilitator in group.facilitators:
        p.budget.credit(facilitator, when, group.minutes)


# -- playing the plan ------------------------------------------------------------------------


class SharedHash(Passwords):
    """Every demo member has the same, published password: it is hashed once (Argon2id at
    the configured cost) and that hash is stored for each of them, instead of forty slow
    hashes of one string. Nothing secret is lost: the password is printed. Real
    registrations hash every password with its own salt."""

    def __init__(self, cost: str) -> None:
        super().__init__(cost)
        self._hashed: dict[str, str] = {}

    async def hash(self, password: str) -> str:
        if password not in self._hashed:
            self._hashed[password] = await super().hash(password)
        return self._hashed[password]


def _slots(slots: tuple[tuple[str, str, str], ...]) -> list[people.Slot]:
    return msgspec.convert(
        [{"day": d, "start": s, "end": e} for d, s, e in slots], list[people.Slot]
    )


class Seeder:
    """Plays a `Plan` against the real services, in time order."""

    def __init__(self, tb: Timebank, clock: SeedClock, plan_: Plan) -> None:
        self.tb = tb
        self.clock = clock
        self.plan = plan_
        self.token_ids: list[str] = []
        self.manager = plan_.person(data.MANAGER.key)
        self.limits = demo_limits(tb.settings)
        self._introduced: Person | None = None
        self._principals: dict[Person, Principal] = {}

    async def run(self) -> None:
        for when, _, act, args in sorted(self.plan.acts, key=lambda a: (a[0], a[1])):
            self.clock.move_to(self.clock.at_day(when))
            method: Callable[..., Awaitable[None]] = getattr(self, f"_{act}")
            await method(*args)
        await self._revoke_tokens()
        await self._deliver()

    # -- who acts --------------------------------------------------------------------------

    async def principal(self, person: Person) -> Principal:
        """The person's principal, from a token the seed issued them, authenticated as the
        API does (again after a change of what they administer)."""
        assert person.member_id is not None, f"{person.name} has not joined yet"
        known = self._principals.get(person)
        if known is not None:
            return known
        if person.token is None:
            async with writing(self.tb.engine) as conn:
                person.token, token_id = await issue_member_token(
                    conn,
                    person.member_id,
                    TOKEN_NAME,
                    SCOPES,
                    created_at=stamp(self.clock),
                    expires_at=None,
                )
            self.token_ids.append(token_id)
        async with reading(self.tb.engine) as conn:
            principal = await authenticate(conn, person.token, now=stamp(self.clock))
        assert principal is not None, f"{person.name}'s seed token does not authenticate"
        self._principals[person] = principal
        return principal

    async def actor(self, person: Person) -> Actor:
        return authz.actor(await self.principal(person))

    async def _revoke_tokens(self) -> None:
        now = stamp(self.clock)
        async with writing(self.tb.engine) as conn:
            for token_id in self.token_ids:
                await revoke_member_token(conn, token_id, None, now)

    # -- people and organisations ----------------------------------------------------------

    def _profile(self, person: Person) -> people.Profile:
        raw: dict[str, Any] = {
            "zone": person.zone,
            "areas": list(person.areas),
            "tags": list(person.tags),
            "languages": list(person.languages),
            "about": person.about,
            "availability_slots": _slots(person.slots),
        }
        return people.clean_profile(self.tb.zones, raw)

    async def _create_staff(self, person: Person) -> None:
        created = await people.create(
            self.tb,
            SEED_ACTOR,
            name=person.name,
            email=person.email,
            password=DEMO_PASSWORD,
            role=person.role,
            profile=self._profile(person),
            limits=self.limits,
        )
        person.member_id = created.id

    async def _open_pool(self) -> None:
        require(await self.tb.ledger.open_account(POOL, "pool"))

    async def _apply_policies(self) -> None:
        """The installation's policy files, as `serve` applies them at start-up (none
        when the directory is missing, as in a test's working directory)."""
        await apply_directory(
            self.tb.engine,
            self.tb.settings.policies_dir,
            format_time(self.clock()),
            zones=self.tb.zones.ids,
        )

    async def _enrol(self, org: Org, worker: Person) -> None:
        assert worker.member_id is not None
        admin = await self.principal(org.admin)
        authz.may_manage_org(admin, DEMO_ORG_IDS[org.text.key])
        try:
            await policy_views.enrol(self.tb, authz.actor(admin), DEMO_GRANT, worker.member_id)
        except RuleViolation as exc:
            if exc.code != "policy-not-found":  # no policies directory: nothing to enrol in
                raise

    async def _register(self, person: Person) -> None:
        assert person.email is not None
        registered = await people.register(
            self.tb,
            email=person.email,
            password=DEMO_PASSWORD,
            name=person.name,
            profile=self._profile(person),
        )
        assert registered.member_id is not None, f"{person.email} was already registered"
        person.member_id = registered.member_id

    async def _approve(self, person: Person) -> None:
        assert person.member_id is not None
        manager = await self.principal(self.manager)
        async with reading(self.tb.engine) as conn:
            member = await people.require(conn, person.member_id)
        authz.may_administer(manager, member)
        await people.approve(self.tb, authz.actor(manager), person.member_id, limits=self.limits)

    async def _create_offline(self, person: Person) -> None:
        manager = await self.principal(self.manager)
        created = await people.create(
            self.tb,
            authz.actor(manager),
            name=person.name,
            email=None,
            password=None,
            profile=self._profile(person),
            limits=self.limits,
            reason="Registrata allo sportello del Municipio 4: non usa internet; la community "
            "manager registra per lei gli scambi.",
        )
        person.member_id = created.id

    async def _create_org(self, org: Org) -> None:
        manager = await self.principal(self.manager)
        created = await orgs.create(
            self.tb,
            authz.actor(manager),
            org_id=DEMO_ORG_IDS[org.text.key],
            name=org.name,
            kind=orgs.check_kind(org.text.kind),
            zone=org.zone,
            description=org.text.description,
            admin_member_id=org.admin.member_id,
            limits=self.limits,
        )
        org.org_id = created.id
        self._principals.pop(org.admin, None)  # they administer it now

    async def _propose_link(self, org: Org, worker: Person, title: str) -> None:
        assert org.org_id is not None and worker.member_id is not None
        admin = await self.principal(org.admin)
        authz.may_manage_org(admin, org.org_id)
        await orgs.propose_link(
            self.tb, authz.actor(admin), org.org_id, worker.member_id, title=title
        )

    async def _accept_link(self, org: Org, worker: Person) -> None:
        principal = await self.principal(worker)
        async with reading(self.tb.engine) as conn:
            (link,) = await orgs.links(
                conn, org_id=org.org_id, member_id=worker.member_id, status="proposed"
            )
        authz.may_move_link(principal, link, "accept")
        await orgs.move_link(self.tb, authz.actor(principal), link.id, "accept")

    # -- the board -------------------------------------------------------------------------

    async def _post(self, post: Post) -> None:
        poster = await self.principal(post.owner.acting)
        text = post.text
        raw: dict[str, Any] = {
            "kind": text.kind,
            "resource": text.resource,
            "mode": text.mode,
            "title": text.title,
            "description": text.description,
            "area": text.area,
            "tags": list(text.tags),
        }
        if isinstance(post.owner, Person) and post.owner.slots:
            raw["availability_slots"] = _slots(post.owner.slots)
        owner = post.owner.owner
        board.may_change(poster, owner)
        listing = await board.create(
            self.tb,
            authz.actor(poster),
            owner=owner,
            values=board.clean_fields(self.tb.zones, raw),
            audited=not board.owner_side(poster, owner),
        )
        post.listing_id = listing.id

    async def _renew(self, post: Post) -> None:
        assert post.listing_id is not None
        owner = await self.principal(post.owner.acting)
        board.may_change(owner, post.owner.owner)
        await board.renew(self.tb, authz.actor(owner), post.listing_id, audited=False)

    async def _close(self, post: Post) -> None:
        assert post.listing_id is not None
        owner = await self.principal(post.owner.acting)
        board.may_change(owner, post.owner.owner)
        await board.close(
            self.tb,
            authz.actor(owner),
            post.listing_id,
            reason=post.close_reason or None,
            audited=False,
        )

    async def _introduce(
        self, request: Post, helper: Person | None, offer: Post | None, note: str
    ) -> None:
        """The manager introduces `helper`, or the best suggestion who uses Scambio."""
        assert request.listing_id is not None
        manager = await self.principal(self.manager)
        offer_id = offer.listing_id if offer else None
        if helper is None:
            helper, offer_id = await self._best_helper(request)
        assert helper.member_id is not None
        await matching.introduce(
            self.tb,
            authz.actor(manager),
            request_id=request.listing_id,
            helper=helper.owner,
            offer_id=offer_id,
            note=matching.clean_note(note),
        )
        request.taken = True
        self._introduced = helper

    async def _best_helper(self, request: Post) -> tuple[Person, str | None]:
        assert request.listing_id is not None
        by_member = {person.member_id: person for person in self.plan.people}
        async with reading(self.tb.engine) as conn:
            listing = await board.require(conn, request.listing_id)
            found = await matching.suggestions(conn, listing, self.clock(), limit=20)
        for suggestion in found:
            person = by_member.get(suggestion.owner.id) if suggestion.owner.is_member else None
            if person is not None and person.can_act and not person.note:
                return person, suggestion.offer_id
        fallback = next(
            m
            for m in self.plan.people
            if m.can_act and m.member_id and m is not request.owner and not m.note
        )
        return fallback, None

    async def _helper_from_introduction(self, story: Story) -> None:
        assert self._introduced is not None
        story.provider = self._introduced

    # -- exchanges -------------------------------------------------------------------------

    async def _propose(self, story: Story) -> None:
        principal = await self.principal(story.party(story.proposer).acting)
        post = story.post
        proposal = xch.clean_proposal(
            exchange_id=story.exchange_id,
            provider=story.party(rules.PROVIDER).account,
            receiver=story.receiver.account,
            minutes=story.minutes,
            title=story.title,
            area=story.area,
            listing_id=post.listing_id if post else None,
        )
        await xch.propose(self.tb, principal, proposal)

    async def _side(self, story: Story, side: str) -> Principal:
        return await self.principal(story.party(side).acting)

    async def _accept(self, story: Story) -> None:
        await xch.accept(self.tb, await self._side(story, story.counterpart), story.exchange_id)

    async def _decline(self, story: Story, reason: str) -> None:
        principal = await self._side(story, story.counterpart)
        await xch.decline(self.tb, principal, story.exchange_id, reason)

    async def _cancel(self, story: Story, side: str, reason: str) -> None:
        await xch.cancel(self.tb, await self._side(story, side), story.exchange_id, reason)

    async def _done(self, story: Story, minutes: int) -> None:
        principal = await self._side(story, rules.PROVIDER)
        await xch.mark_done(self.tb, principal, story.exchange_id, minutes)

    async def _confirm(self, story: Story) -> None:
        await xch.confirm(self.tb, await self._side(story, rules.RECEIVER), story.exchange_id)

    async def _dispute(self, story: Story, reason: str) -> None:
        principal = await self._side(story, rules.RECEIVER)
        await xch.dispute(self.tb, principal, story.exchange_id, reason)

    async def _resolve(self, story: Story, minutes: int, reason: str) -> None:
        manager = await self.principal(self.manager)
        await xch.resolve(self.tb, manager, story.exchange_id, minutes, reason)

    async def _thank(self, story: Story, side: str, message: str) -> None:
        await xch.thank(self.tb, await self._side(story, side), story.exchange_id, message)

    async def _record(self, story: Story, day: int) -> None:
        manager = await self.principal(self.manager)
        proposal = xch.clean_proposal(
            exchange_id=story.exchange_id,
            provider=story.party(rules.PROVIDER).account,
            receiver=story.receiver.account,
            minutes=story.minutes,
            title=story.title,
            area=story.area,
        )
        date = self.clock.at_day(day).strftime("%d/%m/%Y")
        reason = f"Modulo cartaceo firmato dalla signora, visita a domicilio del {date}."
        await xch.record(self.tb, manager, proposal, reason)

    async def _create_group(self, group: GroupStory) -> None:
        manager = await self.principal(self.manager)
        plan_ = xch.clean_group(
            group_id=group.group_id,
            title=group.title,
            minutes=group.minutes,
            facilitators=[f.account for f in group.facilitators],
            participants=[(m.account, paid) for m, paid in group.participants],
            description=group.description,
            area=group.area,
            zone=people.clean_zone(self.tb.zones, group.zone),
        )
        await xch.create_group(self.tb, manager, plan_)

    async def _settle_group(self, group: GroupStory) -> None:
        manager = await self.principal(self.manager)
        await xch.settle_group(self.tb, manager, group.group_id, [m.account for m in group.absent])

    async def _donate(self, org: Org, minutes: int, transfer_id: str) -> None:
        """The company pledges staff hours to the community pool, which pays for those who
        cannot pay (urban labs, digital-skills sessions)."""
        admin = await self.principal(org.admin)
        authz.may_spend_from(admin, org.account)
        async with reading(self.tb.engine) as conn:
            await authz.check_not_suspended(conn, [org.account, POOL])
        transfer = Transfer(
            transfer_id, org.account, POOL, minutes, "donation to the community pool"
        )
        require(await self.tb.ledger.transfer(transfer))

    # -- every night -------------------------------------------------------------------------

    async def _nightly(self) -> None:
        """What the scheduled jobs do each night, then the day's mail."""
        await self.tb.ledger.expire_holds()
        sweep = await xch.auto_confirm_due(self.tb)
        assert not sweep.skipped, f"demo: the nightly sweep skipped {sweep.skipped}"
        await board.expire_listings(self.tb)
        await board.send_expiry_reminders(self.tb)
        ran = await policy_runner.run_due(self.tb, self.clock())
        assert not ran.errors, f"demo: a policy run failed: {ran.errors}"
        self.tb.mailer.kick()

    async def _deliver(self) -> None:
        """Wait for the mail the services queued (delivered in the background, as in
        `serve`, while the seed goes on) to be delivered."""
        await self.tb.mailer.idle()
        while await self.tb.mailer.flush():
            pass


def demo_limits(settings: Settings) -> dict[str, int | None]:
    """The settings' default limits, unless they would not let the stories happen (the
    demo is planned for a credit limit of 600 minutes and no upper limit)."""
    low, high = settings.default_min_balance, settings.default_max_balance
    if (low is None or low <= -CREDIT_LIMIT) and high is None:
        return {}
    return {"min_balance": -CREDIT_LIMIT, "max_balance": None}


# -- is there anything here already? -------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Occupancy:
    members: int
    organisations: int
    entries: int
    #: The demo's manager is a member: this is the demo community.
    demo: bool

    @property
    def empty(self) -> bool:
        return not (self.members or self.organisations or self.entries)

    def describe(self) -> str:
        if self.demo:
            return "the demo community is already seeded here: nothing to do"
        return (
            f"the database is not empty ({self.members} members, {self.organisations} "
            f"organisations, {self.entries} ledger entries): the demo is seeded only into an "
            "empty database; nothing was changed"
        )


async def occupancy(engine: AsyncEngine) -> Occupancy:
    async with reading(engine) as conn:
        member_count = (await conn.execute(select(func.count()).select_from(members))).scalar_one()
        org_count = (
            await conn.execute(select(func.count()).select_from(organisations))
        ).scalar_one()
        size = (await conn.execute(select(ledger_head.c.size))).scalar_one_or_none()
        demo = (
            await conn.execute(select(members.c.id).where(members.c.email == MANAGER_EMAIL))
        ).first() is not None
    return Occupancy(int(member_count), int(org_count), int(size or 0), demo)


# -- seeding and what it made ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Login:
    what: str
    name: str
    email: str


@dataclass(frozen=True, slots=True)
class Report:
    """What the seed made, counted in the database afterwards."""

    started: str
    ended: str
    member_status: dict[str, int]
    member_role: dict[str, int]
    organisations: dict[str, int]
    employee_links: dict[str, int]
    listing_kind: dict[str, int]
    listing_status: dict[str, int]
    exchanges: dict[str, int]
    recorded: int
    groups: dict[str, int]
    thanks: int
    introductions: int
    entries: int
    balance_sum: int
    logins: list[Login]
    others: list[str]
    password: str = DEMO_PASSWORD


async def seed(
    engine: AsyncEngine, signer: Signer, settings: Settings, *, now: datetime | None = None
) -> Report:
    """Seed the demo community into the (empty: the caller checks) database at `engine`.

    Runs its own ledger service on a `SeedClock` ending before `now` (default: the real
    time); the caller must not have another one appending to this ledger meanwhile.
    """
    now = now or datetime.now(UTC)
    clock = SeedClock(history_start(now), now - timedelta(seconds=1))
    # Demo mail goes to the log, never to an SMTP server: the addresses are made up.
    quiet = msgspec.structs.replace(settings, smtp_host=None)
    ledger = LedgerService(engine, signer, quiet, clock=clock)
    tb = Timebank.create(ledger, quiet, passwords=SharedHash(quiet.password_hash_cost))
    the_plan = plan(random.Random(SEED))  # noqa: S311 - a reproducible draw, not a secret
    await ledger.start()
    try:
        await Seeder(tb, clock, the_plan).run()
    finally:
        await ledger.stop()
    return await report(engine, the_plan, clock)


async def _counts(conn: Any, column: Any) -> dict[str, int]:
    rows = await conn.execute(select(column, func.count()).group_by(column))
    return {str(key): int(count) for key, count in rows}


async def report(engine: AsyncEngine, the_plan: Plan, clock: SeedClock) -> Report:
    async def count(conn: Any, table: Any, *where: Any) -> int:
        query = select(func.count()).select_from(table)
        return int((await conn.execute(query.where(*where) if where else query)).scalar_one())

    async with reading(engine) as conn:
        member_status = await _counts(conn, members.c.status)
        member_role = await _counts(conn, members.c.role)
        org_kinds = await _counts(conn, organisations.c.kind)
        links = await _counts(conn, employee_links.c.status)
        listing_kind = await _counts(conn, listings.c.kind)
        listing_status = await _counts(conn, listings.c.status)
        exchange_states = await _counts(conn, exchanges.c.state)
        group_states = await _counts(conn, group_exchanges.c.state)
        recorded = await count(conn, exchanges, exchanges.c.recorded_by.is_not(None))
        thanks = await count(conn, exchange_thanks)
        intros = await count(conn, introductions)
        size = (await conn.execute(select(ledger_head.c.size))).scalar_one()
        total = select(func.coalesce(func.sum(accounts.c.posted), 0))
        balance_sum = (await conn.execute(total)).scalar_one()
    logins: list[Login] = []
    others: list[str] = []
    org_of = {org.admin: org for org in the_plan.orgs}
    for person in the_plan.people:
        if person.email is None or person.approved is None:
            continue
        if person.role != "member":
            what = "community manager" if person.role == "manager" else person.role
        elif person in org_of:
            what = f"admin of {org_of[person].name}"
        elif person.note:
            what = person.note
        else:
            others.append(person.email)
            continue
        logins.append(Login(what, person.name, person.email))
    return Report(
        started=stamp(lambda: clock.start),
        ended=stamp(clock),
        recorded=recorded,
        thanks=thanks,
        introductions=intros,
        entries=int(size),
        balance_sum=int(balance_sum),
        logins=logins,
        others=others,
        member_status=member_status,
        member_role=member_role,
        organisations=org_kinds,
        employee_links=links,
        listing_kind=listing_kind,
        listing_status=listing_status,
        exchanges=exchange_states,
        groups=group_states,
    )


def _list(found: dict[str, int]) -> str:
    ordered = sorted(found.items(), key=lambda item: (-item[1], item[0]))
    return ", ".join(f"{n} {what.replace('_', ' ')}" for what, n in ordered)


def describe(report_: Report) -> list[str]:
    """The report as the command line prints it."""
    r = report_
    lines = [
        "Seeded the demo community of Milano Sei l'Altro (Municipi 4 and 6), with history "
        f"from {r.started[:10]} to {r.ended[:10]}:",
        f"  {sum(r.member_status.values())} members ({_list(r.member_status)}); roles: "
        f"{_list(r.member_role)}",
        f"  {sum(r.organisations.values())} organisations ({_list(r.organisations)}); "
        f"employee links: {_list(r.employee_links)}",
        f"  {sum(r.listing_kind.values())} listings ({_list(r.listing_kind)}): "
        f"{_list(r.listing_status)}",
        f"  {sum(r.exchanges.values())} exchanges: {_list(r.exchanges)}; {r.recorded} of them "
        "recorded by the manager for an offline member",
        f"  {sum(r.groups.values())} group exchanges ({_list(r.groups)}), {r.thanks} thanks, "
        f"{r.introductions} introductions",
        f"  ledger: {r.entries} entries; balances sum to {r.balance_sum}",
        "",
        "DEMO LOGINS, for trying Scambio only: every demo member has the SAME password.",
        "Never seed the database of a real community.",
        f"  password (all of them): {r.password}",
    ]
    width = max(len(login.email) for login in r.logins)
    lines += [f"  {login.email:<{width}}  {login.name}: {login.what}" for login in r.logins]
    lines.append("  and the other members, with the same password:")
    lines += ["    " + "  ".join(r.others[n : n + 3]) for n in range(0, len(r.others), 3)]
    lines += [
        "",
        'Log in with POST /api/v1/auth/login {"email": ..., "password": ...} for a token.',
        'Operator (admin) token: scambio token issue --role admin --name "my laptop"',
    ]
    return lines
