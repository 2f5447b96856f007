"""Zones: the neighbourhoods a community is organised in.

The default is Milan's nine Municipi, with Municipi 4 and 6 flagged as the pilot areas of
the origin project. An installation replaces them with `SCAMBIO_ZONES_FILE`, a TOML file
(``[[zone]]`` tables) or a JSON list, each zone with `id`, `name` and optional `pilot`.
Ids are stable API values (profiles and listings store them); names are for people.
"""

from __future__ import annotations

import json
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

ZONE_ID_RE: Final = re.compile(r"[a-z0-9][a-z0-9-]{0,63}")
MAX_ZONES: Final = 500
NAME_MAX: Final = 200


class ZonesError(ValueError):
    """The zones file cannot be used; the message names the file and the problem."""


@dataclass(frozen=True, slots=True)
class Zone:
    id: str
    name: str
    pilot: bool = False


MILAN_MUNICIPI: Final[tuple[Zone, ...]] = tuple(
    Zone(f"municipio-{n}", f"Municipio {n}", pilot=n in (4, 6)) for n in range(1, 10)
)


@dataclass(frozen=True, slots=True)
class Zones:
    """The configured zones, in display order."""

    items: tuple[Zone, ...]

    def get(self, zone_id: str) -> Zone | None:
        return next((zone for zone in self.items if zone.id == zone_id), None)

    @property
    def ids(self) -> frozenset[str]:
        return frozenset(zone.id for zone in self.items)


def _zone(raw: Any, where: str) -> Zone:
    if not isinstance(raw, dict):
        raise ZonesError(f"{where}: each zone must be a table/object with id and name")
    unknown = set(raw) - {"id", "name", "pilot"}
    if unknown:
        raise ZonesError(f"{where}: unknown field(s) {', '.join(sorted(unknown))}")
    zone_id, name, pilot = raw.get("id"), raw.get("name"), raw.get("pilot", False)
    if not isinstance(zone_id, str) or not ZONE_ID_RE.fullmatch(zone_id):
        raise ZonesError(f"{where}: id must match [a-z0-9][a-z0-9-]{{0,63}}, got {zone_id!r}")
    if not isinstance(name, str) or not name.strip() or len(name) > NAME_MAX:
        raise ZonesError(f"{where}: name must be 1 to {NAME_MAX} characters")
    if not isinstance(pilot, bool):
        raise ZonesError(f"{where}: pilot must be true or false")
    return Zone(zone_id, name.strip(), pilot)


def load_zones(path: Path | None) -> Zones:
    """The zones in `path` (TOML or JSON by extension), or Milan's Municipi without one."""
    if path is None:
        return Zones(MILAN_MUNICIPI)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ZonesError(f"zones file {path}: {exc.strerror or exc}") from None
    try:
        if path.suffix.lower() == ".json":
            raw: Any = json.loads(text)
        else:
            raw = tomllib.loads(text).get("zone")
    except (ValueError, tomllib.TOMLDecodeError) as exc:
        raise ZonesError(f"zones file {path}: {exc}") from None
    if not isinstance(raw, list) or not 1 <= len(raw) <= MAX_ZONES:
        raise ZonesError(
            f"zones file {path}: expected a list of 1 to {MAX_ZONES} zones "
            "(a JSON array, or [[zone]] tables in TOML)"
        )
    zones = tuple(_zone(item, f"zones file {path}, zone {n + 1}") for n, item in enumerate(raw))
    if len({zone.id for zone in zones}) != len(zones):
        raise ZonesError(f"zones file {path}: zone ids must be unique")
    return Zones(zones)
