"""arXiv's category taxonomy: a typo in DIGEST_CATEGORIES fails fast instead of fetching nothing."""

from __future__ import annotations

_GROUPS: dict[str, str] = {
    "cs": "AI AR CC CE CG CL CR CV CY DB DC DL DM DS ET FL GL GR GT HC IR IT LG LO MA MM MS NA "
    "NE NI OH OS PF PL RO SC SD SE SI SY",
    "econ": "EM GN TH",
    "eess": "AS IV SP SY",
    "math": "AC AG AP AT CA CO CT CV DG DS FA GM GN GR GT HO IT KT LO MG MP NA NT OA OC PR QA "
    "RA RT SG SP ST",
    "astro-ph": "CO EP GA HE IM SR",
    "cond-mat": "dis-nn mes-hall mtrl-sci other quant-gas soft stat-mech str-el supr-con",
    "nlin": "AO CD CG PS SI",
    "physics": "acc-ph ao-ph app-ph atm-clus atom-ph bio-ph chem-ph class-ph comp-ph data-an "
    "ed-ph flu-dyn gen-ph geo-ph hist-ph ins-det med-ph optics plasm-ph pop-ph soc-ph space-ph",
    "q-bio": "BM CB GN MN NC OT PE QM SC TO",
    "q-fin": "CP EC GN MF PM PR RM ST TR",
    "stat": "AP CO ME ML OT TH",
}
# Archives that are categories on their own (no subject class).
_STANDALONE = [
    "gr-qc",
    "hep-ex",
    "hep-lat",
    "hep-ph",
    "hep-th",
    "math-ph",
    "nucl-ex",
    "nucl-th",
    "quant-ph",
]

KNOWN_CATEGORIES: frozenset[str] = frozenset(
    [f"{group}.{sub}" for group, subs in _GROUPS.items() for sub in subs.split()] + _STANDALONE
)


def unknown_categories(categories: list[str]) -> list[str]:
    """The entries of `categories` that arXiv does not have, in their given order."""
    return [c for c in categories if c not in KNOWN_CATEGORIES]


def check_categories(categories: list[str]) -> list[str]:
    """The categories, or ValueError naming the unknown ones (for settings and profiles)."""
    if not categories:
        raise ValueError("at least one arXiv category is required")
    unknown = unknown_categories(categories)
    if unknown:
        raise ValueError(
            f"unknown arXiv categor{'y' if len(unknown) == 1 else 'ies'}: "
            f"{', '.join(unknown)} (see https://arxiv.org/category_taxonomy)"
        )
    return categories
