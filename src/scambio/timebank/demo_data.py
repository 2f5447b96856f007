"""What the demo community is made of: people, organisations and what they offer and ask.

Plain data, in Italian as the members of a Milanese timebank would write it. The key
people (the manager, the auditor, the organisations' admins, Giulia and Marco of the
worked example, an elderly member who is not online) are written out; the other members
are drawn by `timebank.demo` from the name lists and skill profiles below with a seeded
random generator, so every seed builds the same community.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

from scambio.timebank.areas import (
    CHILDCARE,
    EMPLOYMENT_FLEXIBLE_WORK,
    HEALTH_WELLBEING,
    HOUSING,
    PARENTING,
    TRAINING_EMPOWERMENT,
)

ZONE_4: Final = "municipio-4"
ZONE_6: Final = "municipio-6"
ZONES: Final = (ZONE_4, ZONE_6)

#: Neighbourhoods of each pilot zone, for profiles written as people write them.
NEIGHBOURHOODS: Final = {
    ZONE_4: ("Corvetto", "Calvairate", "Porta Romana", "Forlanini", "Rogoredo", "Ponte Lambro"),
    ZONE_6: ("Giambellino", "Lorenteggio", "Barona", "San Cristoforo", "Navigli", "Bande Nere"),
}


@dataclass(frozen=True, slots=True)
class ListingText:
    """A listing as its owner writes it."""

    kind: str
    title: str
    description: str
    area: str
    tags: tuple[str, ...] = ()
    mode: str = "in_person"
    resource: str = "service"
    #: Typical minutes of one exchange from this listing.
    minutes: tuple[int, ...] = (60, 90, 120)


@dataclass(frozen=True, slots=True)
class Persona:
    """A member written out by hand."""

    key: str
    name: str
    zone: str
    areas: tuple[str, ...]
    about: str
    languages: tuple[str, ...] = ("it",)
    slots: tuple[tuple[str, str, str], ...] = ()
    offers: tuple[ListingText, ...] = ()
    requests: tuple[ListingText, ...] = ()
    #: "member", "manager" or "auditor".
    role: str = "member"
    #: False for someone a manager registers at the help desk (no email, no password).
    online: bool = True
    tags: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Profile:
    """A skill profile for drawn members: what they are good at and one thing they need."""

    areas: tuple[str, ...]
    about: str
    offer: ListingText
    tags: tuple[str, ...] = field(default=())
    #: "f" or "m" when the text speaks as a woman or a man (Italian agrees in gender).
    gender: str | None = None


@dataclass(frozen=True, slots=True)
class OrgText:
    key: str
    name: str
    kind: str
    zone: str
    description: str
    admin: str
    #: Titles of the employees the admin links (the admin's own first, if they are one).
    employee_titles: tuple[str, ...] = ()
    listings: tuple[ListingText, ...] = ()


# -- listings the key people and the organisations post ------------------------------------

HOMEWORK_HELP: Final = ListingText(
    "offer",
    "Aiuto compiti di matematica e scienze (scuole medie)",
    "Sono un'insegnante in pensione: aiuto ragazzi e ragazze delle medie con matematica e "
    "scienze, anche in preparazione all'esame di terza media. Al Giambellino, o online.",
    TRAINING_EMPOWERMENT,
    ("compiti", "matematica", "scuola media"),
    mode="either",
    minutes=(60, 90),
)
MARCO_REQUEST: Final = ListingText(
    "request",
    "Aiuto compiti per mio figlio (seconda media)",
    "Mio figlio Luca fa fatica in matematica e io lavoro su turni. Cerco qualcuno che lo "
    "segua un paio di pomeriggi al mese, in zona Lorenteggio.",
    TRAINING_EMPOWERMENT,
    ("compiti", "matematica"),
    minutes=(90,),
)
MEETING_ROOM: Final = ListingText(
    "offer",
    "Sala riunioni la sera (fino a 20 persone)",
    "La nostra sala riunioni in via Calvairate è libera dopo le 18:30: proiettore, lavagna, "
    "sedie per 20 persone, accesso senza barriere. Per associazioni, gruppi di genitori, "
    "corsi e assemblee di condominio.",
    TRAINING_EMPOWERMENT,
    ("sala", "riunioni", "spazio"),
    resource="space",
    minutes=(120, 180),
)
DIGITAL_SKILLS: Final = ListingText(
    "offer",
    "Sessione di competenze digitali: SPID, email e app del Comune",
    "Il nostro personale tiene sessioni di due ore per piccoli gruppi: attivare lo SPID, "
    "usare l'email e il Fascicolo Sanitario, prenotare online. Portate il vostro telefono.",
    TRAINING_EMPOWERMENT,
    ("digitale", "spid", "anziani"),
    mode="either",
    resource="skill",
    minutes=(120,),
)
EXCEL_COURSE: Final = ListingText(
    "offer",
    "Corso base di fogli di calcolo per chi cerca lavoro",
    "Tre incontri serali per imparare i fogli di calcolo (formule, tabelle, grafici): "
    "competenze richieste in quasi tutti gli annunci di lavoro d'ufficio.",
    EMPLOYMENT_FLEXIBLE_WORK,
    ("excel", "lavoro", "digitale"),
    mode="remote",
    resource="skill",
    minutes=(120,),
)
VAN: Final = ListingText(
    "offer",
    "Furgone con autista per traslochi solidali",
    "Un sabato al mese mettiamo a disposizione un furgone con un nostro autista per piccoli "
    "traslochi e per portare mobili donati a chi ne ha bisogno.",
    HOUSING,
    ("trasloco", "furgone", "mobili"),
    resource="equipment",
    minutes=(120, 180),
)
HOMEWORK_ROOM: Final = ListingText(
    "offer",
    "Spazio compiti del mercoledì pomeriggio",
    "Ogni mercoledì dalle 16 alle 18 nella nostra sede di via Odazio: volontari aiutano "
    "bambini e ragazzi con i compiti. Merenda offerta.",
    CHILDCARE,
    ("compiti", "doposcuola", "bambini"),
    minutes=(120,),
)
PARENTS_GROUP: Final = ListingText(
    "offer",
    "Gruppo di confronto per genitori di adolescenti",
    "Un incontro al mese, con una psicologa volontaria, per genitori di ragazzi dai 12 ai "
    "16 anni: regole, telefono, scuola, amicizie.",
    PARENTING,
    ("adolescenti", "genitori", "gruppo"),
    minutes=(90,),
)
FESTA_VOLUNTEERS: Final = ListingText(
    "request",
    "Volontari per la festa di quartiere al Giambellino",
    "Cerchiamo persone che ci aiutino a montare gli stand, animare i giochi per i bambini "
    "e riordinare alla fine. Anche solo per un paio d'ore.",
    PARENTING,
    ("festa", "volontari", "bambini"),
    minutes=(120, 180),
)
ELDER_COMPANY: Final = ListingText(
    "request",
    "Compagnia per anziani soli il fine settimana",
    "Alcune persone anziane che seguiamo passano il fine settimana da sole. Cerchiamo "
    "volontari per una visita, una passeggiata o una telefonata.",
    HEALTH_WELLBEING,
    ("anziani", "compagnia"),
    minutes=(60, 90),
)
SERVICES_DESK: Final = ListingText(
    "offer",
    "Sportello di orientamento ai servizi sociali",
    "Vi aiutiamo a capire a quali servizi avete diritto (bonus, assistenza domiciliare, "
    "ISEE) e ad accompagnarvi nelle pratiche. Il giovedì mattina in via dei Cinquecento.",
    HEALTH_WELLBEING,
    ("servizi sociali", "isee", "pratiche"),
    minutes=(60,),
)

# -- the key people --------------------------------------------------------------------------

MANAGER: Final = Persona(
    "sara.colombo",
    "Sara Colombo",
    ZONE_6,
    (PARENTING, HEALTH_WELLBEING),
    "Community manager di Milano Sei l'Altro per i Municipi 4 e 6: metto in contatto chi "
    "chiede aiuto con chi può darlo. Mi trovate al punto di comunità del Giambellino.",
    languages=("it", "en"),
    role="manager",
)
AUDITOR: Final = Persona(
    "paolo.ferri",
    "Paolo Ferri",
    ZONE_4,
    (),
    "Valutatore per la fondazione che sostiene il progetto: leggo i conti, non li muovo.",
    role="auditor",
)
GIULIA: Final = Persona(
    "giulia.bianchi",
    "Giulia Bianchi",
    ZONE_6,
    (TRAINING_EMPOWERMENT, CHILDCARE),
    "Insegnante di matematica in pensione, abito al Giambellino da trent'anni. Mi piace "
    "vedere i ragazzi capire finalmente le frazioni.",
    slots=(("tue", "15:00", "18:00"), ("thu", "15:00", "18:00")),
    offers=(HOMEWORK_HELP,),
    tags=("matematica", "scuola"),
)
MARCO: Final = Persona(
    "marco.rossi",
    "Marco Rossi",
    ZONE_6,
    (HOUSING,),
    "Papà di Luca (12 anni), lavoro su turni in un magazzino. So montare mobili e fare "
    "piccole riparazioni: chiedetemi pure.",
    slots=(("sat", "09:00", "13:00"),),
    offers=(
        ListingText(
            "offer",
            "Montaggio mobili e piccole riparazioni",
            "Monto mobili in kit, appendo mensole e quadri, sistemo rubinetti che gocciolano. "
            "Porto io gli attrezzi.",
            HOUSING,
            ("mobili", "riparazioni", "fai da te"),
            minutes=(60, 90, 120),
        ),
    ),
    requests=(MARCO_REQUEST,),
    tags=("fai da te",),
)
AMINA: Final = Persona(
    "amina.benali",
    "Amina Benali",
    ZONE_6,
    (TRAINING_EMPOWERMENT, PARENTING),
    "Sono arrivata a Milano da Casablanca otto anni fa, ho due bambine. Parlo arabo e "
    "francese e aiuto volentieri chi deve parlare con la scuola o con gli uffici.",
    languages=("it", "ar", "fr"),
    slots=(("mon", "09:00", "12:00"), ("wed", "09:00", "12:00")),
    offers=(
        ListingText(
            "offer",
            "Traduzioni arabo e francese per colloqui a scuola e negli uffici",
            "Vi accompagno ai colloqui con gli insegnanti o agli sportelli del Comune e "
            "traduco dall'arabo e dal francese.",
            TRAINING_EMPOWERMENT,
            ("traduzioni", "arabo", "francese"),
            minutes=(60, 90),
        ),
    ),
    requests=(
        ListingText(
            "request",
            "Qualcuno che porti le mie bambine in piscina il sabato",
            "Il sabato mattina lavoro: cerco chi possa accompagnare le mie figlie (7 e 9 anni) "
            "alla piscina Argelati alle 10 e riportarle a casa.",
            CHILDCARE,
            ("bambini", "piscina", "accompagnamento"),
            minutes=(120,),
        ),
    ),
)
GIUSEPPINA: Final = Persona(
    "giuseppina.crippa",
    "Giuseppina Crippa",
    ZONE_4,
    (HEALTH_WELLBEING,),
    "Ha 86 anni, vive sola in via Mompiani e non usa internet: la community manager "
    "registra per lei gli aiuti che riceve. Racconta volentieri la Milano di una volta.",
    online=False,
)
ELENA: Final = Persona(
    "elena.brambilla",
    "Elena Brambilla",
    ZONE_6,
    (TRAINING_EMPOWERMENT, EMPLOYMENT_FLEXIBLE_WORK),
    "Responsabile del personale di Lorenteggio Digitale. Nel tempo libero aiuto chi cerca "
    "lavoro a preparare il curriculum.",
    languages=("it", "en"),
    offers=(
        ListingText(
            "offer",
            "Revisione del curriculum e simulazione di colloquio",
            "Leggiamo insieme il vostro curriculum, lo sistemiamo e facciamo una prova di "
            "colloquio come quelli veri.",
            EMPLOYMENT_FLEXIBLE_WORK,
            ("curriculum", "colloquio", "lavoro"),
            mode="either",
            minutes=(60, 90),
        ),
    ),
)
DAVIDE: Final = Persona(
    "davide.fumagalli",
    "Davide Fumagalli",
    ZONE_4,
    (HOUSING,),
    "Titolare delle Officine Calvairate. Apriamo la nostra sala la sera a chi fa qualcosa "
    "per il quartiere.",
)
CHIARA: Final = Persona(
    "chiara.villa",
    "Chiara Villa",
    ZONE_4,
    (HOUSING, EMPLOYMENT_FLEXIBLE_WORK),
    "Responsabile sostenibilità di Corvetto Logistica: coordino le ore di volontariato dei "
    "colleghi.",
)
FRANCESCA: Final = Persona(
    "francesca.galli",
    "Francesca Galli",
    ZONE_6,
    (PARENTING, CHILDCARE),
    "Presidente dell'Associazione Genitori Giambellino, mamma di tre ragazzi.",
    slots=(("wed", "16:00", "18:00"),),
)
LUCA: Final = Persona(
    "luca.sala",
    "Luca Sala",
    ZONE_4,
    (HEALTH_WELLBEING,),
    "Coordinatore della Cooperativa Sociale Il Ponte: assistenza domiciliare e compagnia "
    "agli anziani del Corvetto.",
)

KEY_PEOPLE: Final = (
    MANAGER,
    AUDITOR,
    GIULIA,
    MARCO,
    AMINA,
    GIUSEPPINA,
    ELENA,
    DAVIDE,
    CHIARA,
    FRANCESCA,
    LUCA,
)

ORGANISATIONS: Final = (
    OrgText(
        "lorenteggio-digitale",
        "Lorenteggio Digitale S.r.l.",
        "company",
        ZONE_6,
        "Software house di 40 persone in via Lorenteggio. Dona ore del personale per "
        "l'alfabetizzazione digitale del quartiere.",
        ELENA.key,
        ("Responsabile del personale", "Sviluppatore", "Assistenza clienti"),
        (DIGITAL_SKILLS, EXCEL_COURSE),
    ),
    OrgText(
        "officine-calvairate",
        "Officine Calvairate S.r.l.",
        "company",
        ZONE_4,
        "Officina meccanica di precisione nata nel 1962 in via Calvairate. Mette a "
        "disposizione la sala riunioni e le ore di alcuni tecnici.",
        DAVIDE.key,
        ("Titolare", "Tecnico di manutenzione", "Amministrazione"),
        (MEETING_ROOM,),
    ),
    OrgText(
        "corvetto-logistica",
        "Corvetto Logistica S.p.A.",
        "company",
        ZONE_4,
        "Magazzini e consegne dell'ultimo miglio dallo scalo di Rogoredo. Partecipa con "
        "mezzi e ore di volontariato aziendale.",
        CHIARA.key,
        ("Responsabile sostenibilità", "Autista", "Magazziniere"),
        (VAN,),
    ),
    OrgText(
        "genitori-giambellino",
        "Associazione Genitori Giambellino",
        "nonprofit",
        ZONE_6,
        "Associazione di genitori delle scuole del Giambellino: doposcuola, feste di "
        "quartiere, gruppi di confronto.",
        FRANCESCA.key,
        (),
        (HOMEWORK_ROOM, PARENTS_GROUP, FESTA_VOLUNTEERS),
    ),
    OrgText(
        "cooperativa-il-ponte",
        "Cooperativa Sociale Il Ponte",
        "nonprofit",
        ZONE_4,
        "Cooperativa sociale di tipo A: assistenza domiciliare, compagnia e orientamento "
        "ai servizi per anziani e famiglie fragili del Municipio 4.",
        LUCA.key,
        ("Coordinatore", "Operatrice sociale"),
        (SERVICES_DESK, ELDER_COMPANY),
    ),
)

# -- drawn members ----------------------------------------------------------------------------

FIRST_NAMES_F: Final = (
    "Francesca", "Chiara", "Martina", "Valentina", "Alessia", "Federica", "Silvia", "Laura",
    "Anna", "Paola", "Roberta", "Simona", "Beatrice", "Giorgia", "Ilaria", "Marta", "Lucia",
    "Rosa", "Caterina", "Daniela", "Serena", "Elisa", "Cristina", "Monica",
)  # fmt: skip
FIRST_NAMES_M: Final = (
    "Luca", "Andrea", "Matteo", "Alessandro", "Lorenzo", "Stefano", "Giorgio", "Roberto",
    "Fabio", "Simone", "Riccardo", "Antonio", "Giovanni", "Massimo", "Emanuele", "Tommaso",
    "Niccolò", "Pietro", "Franco", "Gianluca", "Daniele", "Claudio",
)  # fmt: skip
SURNAMES: Final = (
    "Russo", "Ferrari", "Esposito", "Romano", "Ricci", "Marino", "Greco", "Bruno", "Gallo",
    "Conti", "De Luca", "Mancini", "Costa", "Giordano", "Rizzo", "Lombardi", "Moretti",
    "Barbieri", "Fontana", "Santoro", "Mariani", "Rinaldi", "Caruso", "Ferrara", "Martini",
    "Leone", "Longo", "Gentile", "Martinelli", "Vitale", "Cattaneo", "Mauri", "Pozzi", "Riva",
    "Bonomi", "Sironi", "Parravicini", "D'Angelo",
)  # fmt: skip
#: Milan's Zones 4 and 6 are home to many families who came from abroad; a few of the
#: drawn members are, with the languages they speak.
NEWCOMERS: Final = (
    ("Maria Luz Santos", ("it", "tl", "en")),
    ("Ioana Popescu", ("it", "ro")),
    ("Wei Chen", ("it", "zh")),
    ("Jorge Quispe", ("it", "es")),
)

SLOT_CHOICES: Final = (
    ("mon", "17:00", "19:00"),
    ("tue", "09:00", "12:00"),
    ("tue", "18:00", "20:00"),
    ("wed", "14:00", "17:00"),
    ("thu", "17:30", "19:30"),
    ("fri", "10:00", "12:00"),
    ("sat", "09:00", "12:00"),
    ("sat", "15:00", "18:00"),
    ("sun", "10:00", "12:00"),
)

PROFILES: Final = (
    Profile(
        (CHILDCARE,),
        "Mamma di due bambini, ho fatto l'animatrice per anni.",
        ListingText(
            "offer",
            "Baby-sitting il sabato mattina",
            "Posso tenere bambini dai 3 ai 10 anni il sabato mattina, con giochi al parco "
            "se c'è bel tempo.",
            CHILDCARE,
            ("baby-sitting", "bambini"),
            minutes=(120, 180),
        ),
        ("bambini",),
        gender="f",
    ),
    Profile(
        (CHILDCARE, PARENTING),
        "Nonno a tempo pieno, ho tempo e pazienza.",
        ListingText(
            "offer",
            "Accompagnamento a scuola e alle attività sportive",
            "Accompagno a piedi bambini e ragazzi a scuola, in piscina o agli allenamenti, "
            "nel quartiere.",
            CHILDCARE,
            ("accompagnamento", "bambini", "scuola"),
            minutes=(45, 60),
        ),
        gender="m",
    ),
    Profile(
        (PARENTING,),
        "Ostetrica, da poco mamma a mia volta.",
        ListingText(
            "offer",
            "Consigli per neo-genitori: allattamento, sonno, svezzamento",
            "Due chiacchiere a casa vostra o al parco per chi ha appena avuto un bambino e ha "
            "mille domande.",
            PARENTING,
            ("neonati", "allattamento", "svezzamento"),
            minutes=(60,),
        ),
        gender="f",
    ),
    Profile(
        (TRAINING_EMPOWERMENT,),
        "Ho vissuto dieci anni a Londra e insegno inglese.",
        ListingText(
            "offer",
            "Conversazione in inglese",
            "Un'ora di conversazione in inglese per chi vuole sbloccarsi, per lavoro o per "
            "viaggiare. Anche online.",
            TRAINING_EMPOWERMENT,
            ("inglese", "lingue", "conversazione"),
            mode="either",
            minutes=(60,),
        ),
        ("inglese",),
    ),
    Profile(
        (TRAINING_EMPOWERMENT,),
        "Ex bibliotecaria, faccio volontariato con le scuole di italiano per stranieri.",
        ListingText(
            "offer",
            "Lezioni di italiano per stranieri",
            "Lezioni di italiano per adulti, livello base e intermedio, anche per preparare "
            "l'esame A2 per il permesso di soggiorno.",
            TRAINING_EMPOWERMENT,
            ("italiano", "lingue", "stranieri"),
            minutes=(60, 90),
        ),
        gender="f",
    ),
    Profile(
        (TRAINING_EMPOWERMENT, EMPLOYMENT_FLEXIBLE_WORK),
        "Programmatore, mi piace spiegare la tecnologia senza paroloni.",
        ListingText(
            "offer",
            "Aiuto con computer e smartphone",
            "Vi aiuto a configurare il telefono, usare WhatsApp e le videochiamate, "
            "installare le app della banca e del Comune.",
            TRAINING_EMPOWERMENT,
            ("digitale", "smartphone", "computer"),
            minutes=(60,),
        ),
        ("digitale",),
        gender="m",
    ),
    Profile(
        (EMPLOYMENT_FLEXIBLE_WORK,),
        "Commercialista, aiuto volentieri chi si mette in proprio.",
        ListingText(
            "offer",
            "Orientamento per aprire la partita IVA",
            "Spiego regime forfettario, contributi e scadenze a chi vuole lavorare in proprio, "
            "e come non perdersi con le fatture.",
            EMPLOYMENT_FLEXIBLE_WORK,
            ("partita iva", "fisco", "lavoro autonomo"),
            mode="either",
            minutes=(60, 90),
        ),
    ),
    Profile(
        (EMPLOYMENT_FLEXIBLE_WORK,),
        "Lavoro in un'agenzia per il lavoro del Municipio.",
        ListingText(
            "offer",
            "Ricerca di lavoro online: annunci, candidature, portali",
            "Vi mostro come cercare annunci seri, candidarvi online e usare i portali di "
            "Regione Lombardia.",
            EMPLOYMENT_FLEXIBLE_WORK,
            ("lavoro", "annunci", "candidature"),
            minutes=(60,),
        ),
    ),
    Profile(
        (HOUSING,),
        "Elettricista in pensione, ho la cassetta degli attrezzi sempre pronta.",
        ListingText(
            "offer",
            "Piccoli lavori elettrici e riparazioni in casa",
            "Cambio prese e lampadari, sistemo interruttori e tapparelle. Niente impianti "
            "nuovi: per quelli serve un professionista.",
            HOUSING,
            ("riparazioni", "elettricità", "casa"),
            minutes=(60, 90),
        ),
        ("riparazioni",),
    ),
    Profile(
        (HOUSING,),
        "Ho traslocato sette volte: so come si fa.",
        ListingText(
            "offer",
            "Aiuto per traslochi e per svuotare cantine",
            "Braccia forti per un trasloco, per portare mobili giù dalle scale o per "
            "svuotare una cantina.",
            HOUSING,
            ("trasloco", "cantina"),
            minutes=(120, 180),
        ),
    ),
    Profile(
        (HOUSING, EMPLOYMENT_FLEXIBLE_WORK),
        "Lavoro in un CAF, conosco bene le pratiche per la casa.",
        ListingText(
            "offer",
            "Aiuto con le domande per la casa popolare e i bonus affitto",
            "Vi aiuto a compilare la domanda per l'alloggio popolare e per i contributi "
            "all'affitto, e a raccogliere i documenti.",
            HOUSING,
            ("casa popolare", "affitto", "pratiche"),
            minutes=(60, 90),
        ),
    ),
    Profile(
        (HEALTH_WELLBEING,),
        "Infermiera, faccio volentieri compagnia a chi è solo.",
        ListingText(
            "offer",
            "Compagnia e passeggiate con persone anziane",
            "Una visita, un caffè, una passeggiata al parco o una partita a carte con chi "
            "passa molto tempo da solo.",
            HEALTH_WELLBEING,
            ("anziani", "compagnia", "passeggiate"),
            minutes=(60, 90),
        ),
        ("anziani",),
        gender="f",
    ),
    Profile(
        (HEALTH_WELLBEING,),
        "Ho l'auto e il mercoledì sono libero.",
        ListingText(
            "offer",
            "Spesa e commissioni per chi non può uscire",
            "Faccio la spesa o ritiro le medicine in farmacia per chi non riesce a uscire.",
            HEALTH_WELLBEING,
            ("spesa", "farmacia", "commissioni"),
            minutes=(45, 60),
        ),
        gender="m",
    ),
    Profile(
        (HEALTH_WELLBEING,),
        "Insegnante di yoga, pratico all'aperto quando si può.",
        ListingText(
            "offer",
            "Yoga dolce al parco",
            "Lezione di yoga dolce per tutte le età al parco, su prenotazione. Portate un "
            "tappetino o un asciugamano.",
            HEALTH_WELLBEING,
            ("yoga", "movimento", "parco"),
            minutes=(60,),
        ),
    ),
)

#: Requests drawn members may post (they pick one outside their own areas).
REQUESTS: Final = (
    ListingText(
        "request",
        "Qualcuno che porti mio figlio a calcio il martedì",
        "Allenamento alle 17 al centro sportivo; io esco dal lavoro alle 18.",
        CHILDCARE,
        ("accompagnamento", "sport"),
        minutes=(60,),
    ),
    ListingText(
        "request",
        "Baby-sitter per una sera al mese",
        "Per andare a una riunione di condominio o al cinema ogni tanto: due bambini, 4 e 6 "
        "anni, già cenati.",
        CHILDCARE,
        ("baby-sitting",),
        minutes=(120, 180),
    ),
    ListingText(
        "request",
        "Consigli per gestire i compiti di un figlio con DSA",
        "Mia figlia ha una diagnosi di dislessia: cerco qualcuno che mi spieghi strumenti e "
        "strategie per aiutarla.",
        PARENTING,
        ("dsa", "scuola", "genitori"),
        minutes=(60,),
    ),
    ListingText(
        "request",
        "Aiuto a preparare l'esame di italiano A2",
        "Devo sostenere l'esame per il permesso di soggiorno e vorrei esercitarmi con qualcuno.",
        TRAINING_EMPOWERMENT,
        ("italiano", "esame"),
        minutes=(60, 90),
    ),
    ListingText(
        "request",
        "Imparare a usare lo SPID e il Fascicolo Sanitario",
        "Non riesco ad accedere ai siti con lo SPID e vorrei vedere i miei referti online.",
        TRAINING_EMPOWERMENT,
        ("spid", "digitale"),
        minutes=(60,),
    ),
    ListingText(
        "request",
        "Aiuto a scrivere il curriculum",
        "Cerco lavoro come magazziniere o addetto alle pulizie e il mio curriculum è fermo "
        "al 2015.",
        EMPLOYMENT_FLEXIBLE_WORK,
        ("curriculum", "lavoro"),
        minutes=(60,),
    ),
    ListingText(
        "request",
        "Qualcuno con cui fare una prova di colloquio",
        "Ho un colloquio per un posto da receptionist e vorrei esercitarmi.",
        EMPLOYMENT_FLEXIBLE_WORK,
        ("colloquio", "lavoro"),
        minutes=(60,),
    ),
    ListingText(
        "request",
        "Montaggio di una libreria e di due mensole",
        "Ho comprato una libreria in kit e ho due mensole da fissare al muro, ma non ho il "
        "trapano.",
        HOUSING,
        ("mobili", "montaggio"),
        minutes=(90, 120),
    ),
    ListingText(
        "request",
        "Aiuto per il trasloco di fine mese",
        "Mi trasferisco da Corvetto a Rogoredo: pochi mobili ma tante scatole.",
        HOUSING,
        ("trasloco",),
        minutes=(120, 180),
    ),
    ListingText(
        "request",
        "Accompagnamento a una visita medica",
        "Ho una visita all'ospedale San Paolo e dopo non potrò guidare.",
        HEALTH_WELLBEING,
        ("visita medica", "accompagnamento"),
        minutes=(90, 120),
    ),
    ListingText(
        "request",
        "Una passeggiata insieme la domenica",
        "Dopo l'operazione al ginocchio devo camminare ogni giorno, ma da sola non mi va.",
        HEALTH_WELLBEING,
        ("passeggiate", "compagnia"),
        minutes=(60,),
    ),
)

# -- words for the stories ------------------------------------------------------------------

THANKS_FROM_RECEIVER: Final = (
    "Grazie mille, un aiuto prezioso!",
    "Puntualità, gentilezza e tanta competenza. Grazie!",
    "Grazie di cuore, non sapevo proprio come fare.",
    "Tutto perfetto, alla prossima!",
    "Grazie! Ci vediamo alla festa di quartiere.",
    "Che pazienza! Grazie davvero.",
)
THANKS_FROM_PROVIDER: Final = (
    "È stato un piacere, grazie a te per l'accoglienza.",
    "Grazie per il caffè e per la chiacchierata!",
    "Bello conoscerci, a presto.",
)
DECLINE_REASONS: Final = (
    "Quella settimana sono fuori Milano, mi dispiace.",
    "Ho già trovato qualcuno, grazie lo stesso!",
)
CANCEL_REASONS: Final = (
    "Mi sono ammalato, scusate: riproponiamo più avanti.",
    "Il trasloco è stato rimandato al mese prossimo.",
)
