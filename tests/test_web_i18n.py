"""The Italian catalog is complete and well-formed: every message the pages use (in
templates and in Python, marked with `_`/`N_`) has a translation, with the same
placeholders, and the catalog holds no message the pages no longer use."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from babel.messages.pofile import read_po

from scambio.web import i18n

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "src" / "scambio" / "web" / "babel.cfg"


def extracted(tmp_path: Path) -> set[str]:
    pot = tmp_path / "messages.pot"
    pybabel = Path(sys.executable).with_name("pybabel")
    subprocess.run(
        [str(pybabel), "-q", "extract", "-F", str(CONFIG), "-k", "N_", "-o", str(pot), "."],
        cwd=ROOT,
        check=True,
        timeout=120,
    )
    with pot.open("rb") as source:
        return {m.id if isinstance(m.id, str) else m.id[0] for m in read_po(source) if m.id}


def test_every_message_has_an_italian_translation(tmp_path: Path) -> None:
    wanted = extracted(tmp_path)
    assert len(wanted) > 300
    with i18n.catalog_path("it").open("rb") as source:
        catalog = read_po(source, locale="it")
    have = {m.id if isinstance(m.id, str) else m.id[0]: m for m in catalog if m.id}
    missing = sorted(wanted - set(have))
    assert not missing, f"run `make messages` and translate: {missing[:10]}"
    untranslated = sorted(
        key
        for key, m in have.items()
        if key in wanted
        and (m.fuzzy or not (m.string if isinstance(m.string, str) else all(m.string)))
    )
    assert not untranslated, untranslated[:10]
    stale = sorted(set(have) - wanted)
    assert not stale, f"no longer used, run `make messages`: {stale[:10]}"
    problems = [(m.id, errors) for m, errors in catalog.check()]
    assert not problems, problems[:5]


def test_catalogs_compile_in_memory_and_translate() -> None:
    italian = i18n.translations("it")
    assert italian.gettext("Log in") == "Accedi"
    assert italian.ngettext("waiting %(num)s day", "waiting %(num)s days", 3) == (
        "in attesa da %(num)s giorni"
    )
    assert i18n.translations("en").gettext("Log in") == "Log in"
    assert i18n.choose(None, None) == "it"
    assert i18n.choose("en", "it") == "en"
    assert i18n.choose("fr", "en") == "en"
    assert i18n.choose("<script>", None) == "it"
