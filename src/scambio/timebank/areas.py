"""The six areas of intervention of the Milan project ("Welfare in azione", Zones 4 and 6).

Profiles name the areas a member is competent in; listings and matching (later) use the
same ids. Ids are stable API values; names are for people (English and Italian).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final


@dataclass(frozen=True, slots=True)
class Area:
    id: str
    name: str
    name_it: str


CHILDCARE: Final = "childcare"
PARENTING: Final = "parenting"
TRAINING_EMPOWERMENT: Final = "training_empowerment"
EMPLOYMENT_FLEXIBLE_WORK: Final = "employment_flexible_work"
HOUSING: Final = "housing"
HEALTH_WELLBEING: Final = "health_wellbeing"

AREAS: Final[tuple[Area, ...]] = (
    Area(CHILDCARE, "Childcare", "Cura dei bambini"),
    Area(PARENTING, "Parenting", "Genitorialità"),
    Area(TRAINING_EMPOWERMENT, "Training and empowerment", "Formazione ed empowerment"),
    Area(
        EMPLOYMENT_FLEXIBLE_WORK,
        "Employment and flexible work",
        "Lavoro e conciliazione",
    ),
    Area(HOUSING, "Housing", "Abitare"),
    Area(HEALTH_WELLBEING, "Health and wellbeing", "Salute e benessere"),
)

AREA_IDS: Final = frozenset(area.id for area in AREAS)
