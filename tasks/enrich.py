"""Facts readers ask for, read from a paper's comment and abstract: code links, venue, length.

Deterministic rules, no LLM: the same text always gives the same enrichment, so it is computed
whenever a paper is stored (tasks/lake.py papers_table) and again when a digest is rendered.
Example comment: `Accepted to ECCV 2026. 15 pages, 4 figures. Code: https://github.com/a/b`
gives venue ECCV, year 2026, status `accepted`, 15 pages, 4 figures and one code link.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import urlsplit

# What a venue's status can be, strongest first: a comment naming several (a "poster accepted
# at ...") keeps the first of this list it names. Oral, spotlight, highlight and poster are
# acceptances with their presentation.
STATUSES = (
    "oral",
    "spotlight",
    "highlight",
    "poster",
    "accepted",
    "published",
    "to appear",
    "under review",
    "submitted",
)
_STATUS_PATTERNS = {
    "oral": r"\boral\b",
    "spotlight": r"\bspotlight\b",
    "highlight": r"\bhighlight\b",
    "poster": r"\bposter\b",
    "accepted": r"\baccept(?:ed|ance)?\b|\bto be presented\b",
    "published": r"(?<!\bbe )\bpublished\b|^in proceedings\b",
    "to appear": r"\bto appear\b|\bwill appear\b|\bto be published\b|\bforthcoming\b",
    "under review": r"\bunder (?:review|submission)\b",
    # "submitted to arXiv" and "the submitted version" name no venue's review.
    "submitted": r"\bsubmitted\b(?!\s+(?:to\s+arxiv|version))|\bsubmission\b",
}
_STATUS_RES = {name: re.compile(p, re.IGNORECASE) for name, p in _STATUS_PATTERNS.items()}

# Well-known venues: canonical name -> the ways comments spell it. Acronyms match with their
# case (so "acl" in a word is no venue); long names ignore case.
_VENUES: dict[str, tuple[str, ...]] = {
    "CVPR": ("CVPR", "Conference on Computer Vision and Pattern Recognition"),
    "ICCV": ("ICCV", "International Conference on Computer Vision"),
    "ECCV": ("ECCV", "European Conference on Computer Vision"),
    "WACV": ("WACV", "Winter Conference on Applications of Computer Vision"),
    "BMVC": ("BMVC", "British Machine Vision Conference"),
    "ACCV": ("ACCV", "Asian Conference on Computer Vision"),
    "3DV": ("3DV", "International Conference on 3D Vision"),
    "NeurIPS": ("NeurIPS", "Neurips", "NIPS", "Neural Information Processing Systems"),
    "ICML": ("ICML", "International Conference on Machine Learning"),
    "ICLR": ("ICLR", "International Conference on Learning Representations"),
    "AAAI": ("AAAI",),
    "IJCAI": ("IJCAI", "International Joint Conference on Artificial Intelligence"),
    "UAI": ("UAI", "Conference on Uncertainty in Artificial Intelligence"),
    "AISTATS": ("AISTATS",),
    "COLT": ("COLT",),
    "KDD": ("KDD", "SIGKDD"),
    "ECML PKDD": ("ECML PKDD", "ECML-PKDD", "ECMLPKDD"),
    "WWW": ("The Web Conference",),
    "SIGIR": ("SIGIR",),
    "CIKM": ("CIKM",),
    "WSDM": ("WSDM",),
    "ACL": ("ACL", "Annual Meeting of the Association for Computational Linguistics"),
    "EMNLP": ("EMNLP", "Empirical Methods in Natural Language Processing"),
    "NAACL": ("NAACL",),
    "EACL": ("EACL",),
    "COLING": ("COLING",),
    "LREC": ("LREC",),
    "Interspeech": ("Interspeech", "INTERSPEECH"),
    "ICASSP": (
        "ICASSP",
        "International Conference on Acoustics, Speech and Signal Processing",
        "International Conference on Acoustics, Speech, and Signal Processing",
    ),
    "ICIP": ("ICIP", "International Conference on Image Processing"),
    "ICME": ("ICME", "International Conference on Multimedia and Expo"),
    "ICPR": ("ICPR", "International Conference on Pattern Recognition"),
    "ICDAR": ("ICDAR", "International Conference on Document Analysis and Recognition"),
    "MICCAI": ("MICCAI", "Medical Image Computing and Computer Assisted Intervention"),
    "MIDL": ("MIDL",),
    "ISBI": ("ISBI", "International Symposium on Biomedical Imaging"),
    "ICRA": ("ICRA", "International Conference on Robotics and Automation"),
    "IROS": ("IROS", "International Conference on Intelligent Robots and Systems"),
    "RSS": ("RSS", "Robotics: Science and Systems"),
    "CoRL": ("CoRL", "Conference on Robot Learning"),
    "SIGGRAPH Asia": ("SIGGRAPH Asia",),
    "SIGGRAPH": ("SIGGRAPH",),
    "ACM MM": ("ACM MM", "ACMMM", "ACM Multimedia", "ACM International Conference on Multimedia"),
    "TPAMI": (
        "TPAMI",
        "T-PAMI",
        "IEEE Transactions on Pattern Analysis and Machine Intelligence",
    ),
    "IJCV": ("IJCV", "International Journal of Computer Vision"),
    "TIP": ("IEEE Transactions on Image Processing",),
    "TMM": ("IEEE Transactions on Multimedia",),
    "TCSVT": ("TCSVT", "IEEE Transactions on Circuits and Systems for Video Technology"),
    "TMLR": ("TMLR", "Transactions on Machine Learning Research"),
    "JMLR": ("JMLR", "Journal of Machine Learning Research"),
}


def _alias_pattern(alias: str) -> str:
    # An acronym glued to its year ("ECCV2026", "ICML'26") still counts: letters must not
    # continue the name, digits may.
    return r"(?<![A-Za-z])" + re.escape(alias).replace(r"\ ", r"[\s-]+") + r"(?![A-Za-z])"


_KNOWN = [
    (
        name,
        re.compile(_alias_pattern(alias), 0 if alias.upper() == alias else re.IGNORECASE),
    )
    for name, aliases in _VENUES.items()
    for alias in sorted(aliases, key=len, reverse=True)
]

# A year: 2026, or '26 / 26 glued to an acronym.
_YEAR_AFTER = re.compile(r"\A[\s'’-]{0,3}(?P<year>(?:19|20)\d\d|\d\d)(?![\d])")
_FULL_YEAR = re.compile(r"(?<![\d])(?:19|20)\d\d(?![\d])")
# An acronym in parentheses, maybe with its year: "(SMC 2026)", "(RSS)", "(GMLLM'26)".
_PAREN_ACRONYM = re.compile(
    r"\((?P<name>[A-Z][A-Za-z&]*[A-Z][A-Za-z0-9&-]*?)(?:[\s'’-]{0,2}(?P<year>(?:20)?\d\d))?\)"
)
# An acronym with at least two capitals glued to or followed by a year: "SIGDIAL2026", "RLC 2026".
_ACRONYM_YEAR = re.compile(
    r"(?<![\w@-])(?P<name>[A-Z][A-Za-z0-9]*[A-Z][A-Za-z0-9]*)[\s'’-]{0,2}"
    r"(?P<year>20\d\d|(?<=['’])\d\d)(?!\d)"
)
# A venue named after its status: "accepted by IEEE Communications Magazine".
_AFTER_STATUS = re.compile(
    r"\b(?:accepted|accept|published|submitted|to appear|to be published|presented)"
    r"(?:\s+(?:to|for)\s+(?:publication|presentation))?"
    r"(?:\s+as\s+an?\s+[\w\s-]{1,30}?)?"
    r"\s+(?:in|at|to|by|on|for)\s+(?:the\s+)?(?:proceedings\s+of\s+(?:the\s+)?)?"
    r"(?P<venue>(?-i:[A-Z0-9])[^.,;:()\[\]@]{2,80})",
    re.IGNORECASE,
)
_VENUE_TAIL = re.compile(
    r"\s+(?:on|in)\s+(?:\d|January|February|March|April|May|June|July|August|September"
    r"|October|November|December).*$|\s+(?:19|20)\d\d.*$|\s+(?:as|with)\s.*$",
    re.IGNORECASE,
)
_ORDINAL = re.compile(r"^(?:\d+(?:st|nd|rd|th)|first|second|third)\s+", re.IGNORECASE)
# Clauses that name a venue without a status word still say what they are.
_VENUE_WORDS = re.compile(
    r"\b(?:conference|workshop|symposium|journal|proceedings|transactions|track)\b", re.IGNORECASE
)
_WORKSHOP = re.compile(r"\bworkshop\b|@", re.IGNORECASE)
_FINDINGS = re.compile(r"\bfindings\b", re.IGNORECASE)
_NOT_VENUES = frozenset({"IEEE", "ACM", "arXiv", "ARXIV", "LNCS", "AI", "PDF", "URL", "DOI"})
# Words that, alone, name no particular venue ("submitted to IEEE Journal", "a journal").
_GENERIC_WORDS = frozenset(
    "a an the ieee acm springer elsevier proc proceedings journal journals conference "
    "transactions workshop symposium review peer arxiv this our".split()
)
_CLAUSE_SPLIT = re.compile(r"(?<=[.;!?])\s+(?=\S)|\n+")

_PAGES = re.compile(r"(?<![\d.])(?P<n>\d{1,4})\s*-?\s*(?:pages?|pgs?|pges)\b", re.IGNORECASE)
_FIGURES = re.compile(r"(?<![\d.])(?P<n>\d{1,3})\s*(?:figures?|figs?)\b", re.IGNORECASE)

# URLs: written out, bare (github.com/...), or inside LaTeX \url{...} / \href{...}{...}.
_URL = re.compile(
    r"(?:https?://|(?<![\w./@])(?=(?:www\.|github\.com/|gitlab\.com/|huggingface\.co/)))"
    r"[^\s<>\"'{}\[\]()\\|^`]+",
    re.IGNORECASE,
)
_TRAILING = ".,;:!?*~'’"
# A URL becomes a Markdown link target: only characters that need no escaping there and that
# CommonMark keeps as they are (no parentheses, spaces, `&` entities, backslashes or quotes).
SAFE_URL = re.compile(
    r"https?://[a-z0-9.-]+(?::\d{1,5})?(?:[/?#](?:[A-Za-z0-9._~!$+,=:@/?#-]|%[0-9A-Fa-f]{2})*)?",
    re.ASCII,
)
_CODE_HOSTS = ("github.com", "gitlab.com", "bitbucket.org", "codeberg.org", "sourceforge.net")
_MODEL_HOSTS = ("huggingface.co", "hf.co", "hf.space", "modelscope.cn")
# Links that are never code or a project page, whatever the text around them calls them.
_OTHER_HOSTS = (
    "arxiv.org",
    "doi.org",
    "youtube.com",
    "youtu.be",
    "vimeo.com",
    "bilibili.com",
    "web.archive.org",
    "tinyurl.com",
    "bit.ly",
    "twitter.com",
    "x.com",
    "linkedin.com",
)
# What the text just before a URL calls it, when the host does not say.
_NAMED_PROJECT = re.compile(
    r"\b(?:code|codes|codebase|source|repo|repository|implementation|project|website|"
    r"homepage|home\s+page|webpage|web\s+page|page)\b[^.;]{0,40}$",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class Enrichment:
    """What a paper's comment and abstract say beyond arXiv's fields (None: not stated)."""

    code_urls: tuple[str, ...] = ()
    venue: str | None = None
    venue_year: int | None = None
    venue_status: str | None = None
    venue_evidence: str | None = None  # the comment's clause the venue/status was read from
    pages: int | None = None
    figures: int | None = None

    def venue_line(self) -> str:
        """How a digest shows the venue: `ECCV 2026, accepted`, `under review`, or ``."""
        name = " ".join(str(part) for part in (self.venue, self.venue_year) if part)
        return ", ".join(part for part in (name, self.venue_status) if part)


def enrich(abstract: str, comment: str | None) -> Enrichment:
    """The enrichment of one paper (see the module's docstring)."""
    comment = " ".join((comment or "").split()) if comment else ""
    venue, year, status, evidence = read_venue(comment)
    return Enrichment(
        code_urls=code_urls(" ".join(filter(None, [comment, abstract]))),
        venue=venue,
        venue_year=year,
        venue_status=status,
        venue_evidence=evidence,
        pages=_first_number(_PAGES, comment, limit=2000),
        figures=_first_number(_FIGURES, comment, limit=500),
    )


def _first_number(pattern: re.Pattern[str], text: str, limit: int) -> int | None:
    """The first count the pattern finds ("22 pages, 13 figures" -> 22 for pages)."""
    for match in pattern.finditer(text):
        value = int(match["n"])
        if 0 < value <= limit:
            return value
    return None


# -- venue ------------------------------------------------------------------------------------


def _clauses(comment: str) -> list[str]:
    return [c.strip() for c in _CLAUSE_SPLIT.split(comment) if c.strip()]


def _status(clause: str) -> str | None:
    return next((s for s in STATUSES if _STATUS_RES[s].search(clause)), None)


def read_venue(comment: str) -> tuple[str | None, int | None, str | None, str | None]:
    """(venue, year, status, evidence) from a comment: the first clause naming a venue wins,
    else the first clause with a status alone ("under review").

    >>> read_venue("12 pages. Accepted to CVPR 2026 as a highlight")
    ('CVPR', 2026, 'highlight', 'Accepted to CVPR 2026 as a highlight')
    """
    status_only: tuple[str | None, int | None, str | None, str | None] = (None, None, None, None)
    for clause in _clauses(comment):
        status = _status(clause)
        found = _known_venue(clause)
        if found is None and (status or _VENUE_WORDS.search(clause)):
            found = _other_venue(clause)
        if found is not None:
            name, year, start = found
            before = clause[:start]
            if name in _VENUES and _WORKSHOP.search(clause):
                name += " Workshop"
            elif name == "ACL" and _FINDINGS.search(before):
                name += " Findings"
            return name, year, status, clause[:300]
        if status and status_only[2] is None:
            status_only = (None, None, status, clause[:300])
    return status_only


def _known_venue(clause: str) -> tuple[str, int | None, int] | None:
    hits = [(m.start(), name, m.end()) for name, rx in _KNOWN for m in [rx.search(clause)] if m]
    if not hits:
        return None
    start, name, end = min(hits, key=lambda h: (h[0], -(h[2] - h[0])))
    return name, _year_near(clause, end), start


def _year_near(clause: str, end: int) -> int | None:
    """The year glued to or just after a venue's name ("ECCV2026", "ICML'26", "(RSS) 2026"),
    else the only full year the clause names."""
    rest = re.sub(r"\A\s*\([^)]{1,12}\)", "", clause[end:])
    glued = _YEAR_AFTER.match(rest)
    if glued:
        value = int(glued["year"])
        return value if value >= 1900 else 2000 + value
    years = {int(y) for y in _FULL_YEAR.findall(clause)}
    return years.pop() if len(years) == 1 else None


def _other_venue(clause: str) -> tuple[str, int | None, int] | None:
    """A venue the list does not know: an acronym in parentheses, an acronym with its year,
    or the words after the status ("accepted by IEEE Communications Magazine")."""
    for rx in (_PAREN_ACRONYM, _ACRONYM_YEAR):
        for match in rx.finditer(clause):
            if match["name"] in _NOT_VENUES or match["name"].isdigit():
                continue
            year = match["year"]
            value = int(year) if year else None
            if value is not None and value < 100:
                value += 2000
            return match["name"], value or _year_near(clause, match.end()), match.start()
    after = _AFTER_STATUS.search(clause)
    if after:
        name = _ORDINAL.sub("", _VENUE_TAIL.sub("", after["venue"]).strip())
        name = re.sub(r"^(?:19|20)\d\d\s+", "", name).strip()
        if 3 <= len(name) <= 80 and set(name.lower().split()) - _GENERIC_WORDS:
            return name, _year_near(clause, after.end()), after.start("venue")
    return None


# -- links ------------------------------------------------------------------------------------


def _host(url: str) -> str:
    return (urlsplit(url).hostname or "").lower()


def _on(host: str, domains: tuple[str, ...]) -> bool:
    return any(host == d or host.endswith("." + d) for d in domains)


def link_kind(url: str) -> str:
    """How a digest labels a code link: `Code`, `Hugging Face`, `ModelScope` or `Project page`."""
    host = _host(url)
    if _on(host, _CODE_HOSTS):
        return "Code"
    if _on(host, ("modelscope.cn",)):
        return "ModelScope"
    if _on(host, _MODEL_HOSTS):
        return "Hugging Face"
    return "Project page"


def _clean_url(raw: str) -> str | None:
    url = raw.rstrip(_TRAILING)
    if not url.lower().startswith(("http://", "https://")):
        url = "https://" + url
    parts = urlsplit(url)
    url = parts._replace(scheme=parts.scheme.lower(), netloc=parts.netloc.lower()).geturl()
    url = url.rstrip(_TRAILING)
    return url if SAFE_URL.fullmatch(url) else None


def code_urls(text: str) -> tuple[str, ...]:
    """Code, model and project-page links in `text`, each once, in order of appearance.

    Kept: links to code and model hosts (GitHub, GitLab, Hugging Face, ...), GitHub Pages
    sites, and any other link the text just before it names as code or a project page
    ("Project page: https://..."). Videos, DOIs, arXiv and short links are never kept.
    """
    text = re.sub(r"\\(?:url|href)\s*\{", " ", text)  # \href{URL}{label} -> URL
    found: list[str] = []
    seen: set[str] = set()
    previous_end = 0
    for match in _URL.finditer(text):
        before = text[previous_end : match.start()]
        previous_end = match.end()
        url = _clean_url(match.group())
        if url is None:
            continue
        host = _host(url)
        if _on(host, _OTHER_HOSTS):
            continue
        named = _NAMED_PROJECT.search(before[-60:]) is not None
        if not (_on(host, _CODE_HOSTS + _MODEL_HOSTS + ("github.io",)) or named):
            continue
        key = url.rstrip("/").removesuffix(".git").lower()
        if key in seen or (urlsplit(url).path.strip("/") == "" and _on(host, _CODE_HOSTS)):
            continue
        seen.add(key)
        found.append(url)
    return tuple(found)
