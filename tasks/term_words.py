"""The word lists key phrases are cut with (tasks/terms.py): stopwords, boilerplate, plurals."""

from __future__ import annotations

# Function words: a phrase never spans one. scikit-learn's English list (BSD-3-Clause; from the
# Glasgow Information Retrieval Group's list), less the content words it holds that are topics in
# papers ("system", "fire", "detail", "top", "bottom", "full", "empty", "side", "part", "name"...).
_ENGLISH = """
a about above across after afterwards again against all almost alone along already also although
always am among amongst amoungst amount an and another any anyhow anyone anything anyway anywhere
are around as at back be became because become becomes becoming been before beforehand behind
being below beside besides between beyond both but by can cannot cant co con could couldnt de do
done down due during each eg eight either eleven else elsewhere enough etc even ever every everyone
everything everywhere except few fifteen fifty first five for former formerly forty four from
further get give go had has hasnt have he hence her here hereafter hereby herein hereupon hers
herself him himself his how however hundred i ie if in inc indeed into is it its itself keep last
latter latterly least less ltd made many may me meanwhile might mine more moreover most mostly
much must my myself namely neither never nevertheless next nine no nobody none noone nor not
nothing now nowhere of off often on once one only onto or other others otherwise our ours
ourselves out over own per perhaps please put rather re same see seem seemed seeming seems several
she should show since sincere six sixty so some somehow someone something sometime sometimes
somewhere still such take ten than that the their them themselves then thence there thereafter
thereby therefore therein thereupon these they third this those though three through throughout
thru thus to together too toward towards twelve twenty two un under until up upon us very via was
we well were what whatever when whence whenever where whereafter whereas whereby wherein whereupon
wherever whether which while whither who whoever whole whom whose why will with within without
would yet you your yours yourself yourselves
"""

# Verbs, adverbs and adjectives of abstracts' boilerplate: they end a phrase too ("we propose a
# novel diffusion model" gives "diffusion model").
_BOILERPLATE = """
propose proposes proposed proposing present presents presented presenting introduce introduces
introduced introducing show shows showed shown showing demonstrate demonstrates demonstrated
demonstrating achieve achieves achieved achieving outperform outperforms outperformed
outperforming enable enables enabled enabling allow allows allowed allowing leverage leverages
leveraged leveraging use uses used using utilize utilizes utilized utilizing based via employ
employs employed develop develops developed developing design designs designed provide provides
provided providing improve improves improved improving address addresses addressed addressing
obtain obtains obtained perform performs performed performing evaluate evaluates evaluated
evaluating conduct conducts conducted require requires required requiring remain remains
consider considers considered called termed named make makes making build builds built
novel new existing various different extensive comprehensive superior significant significantly
substantially substantial promising effective effectively efficient efficiently previous previously
recent recently current currently numerous diverse strong simple key main specific particular
overall better best large-scale state-of-the-art sota experimental experiments extensive
respectively furthermore additionally specifically finally notably moreover particularly
existing typically widely commonly largely highly consistently remarkable remarkably competitive
crucial critical challenging important effectiveness superiority improvement improvements
paper work approach approaches method methods framework frameworks result results
performance task tasks experiment
rely relies relying capture captures captured capturing learn learns learning-based generate
generates generated generating integrate integrates integrated integrating lack lacks lacking
struggle struggles struggling enhance enhances enhanced enhancing reduce reduces reduced reducing
increase increases increased increasing exploit exploits exploited exploiting exhibit exhibits
incorporate incorporates incorporated incorporating maintain maintains maintaining yield yields
produce produces produced producing ensure ensures ensured ensuring preserve preserves preserved
support supports supported supporting mitigate mitigates mitigating suffer suffers suffering
fail fails failing focus focuses focusing explore explores explored exploring investigate
investigates investigated investigating apply applies applied applying adopt adopts adopted
extend extends extended extending combine combines combined combining capture remain
available given able unable across beyond despite among including include includes included
like unlike whereas instead thereby hence whether
identify identifies identified identifying align aligns aligned aligning refine refines refined
refining predict predicts predicted predicting construct constructs constructed constructing
bridge bridges bridging preserve preserving achieve essential severe conventional downstream
complementary second third high-quality well-designed
"""

# Nouns too general to be a term alone; inside a phrase they stay ("diffusion model").
GENERIC = frozenset(
    """
model models data dataset datasets problem problems study studies system systems technique
techniques network networks algorithm algorithms strategy strategies module modules setting
settings information process analysis accuracy baseline baselines benchmark benchmarks
evaluation quality feature features representation representations training learning inference
generation application applications domain level levels scale challenge challenges issue issues
solution solutions design mechanism mechanisms component components capability capabilities
ability efficiency robustness gain gains error errors loss cost time code way ways type types
number range set sets case cases order form fact end goal role impact effect effects aspect
aspects manner terms term step steps stage stages source target input output inputs outputs
state art limitation limitations advantage advantages insight insights scenario scenarios
context field area areas tool tools resource resources metric metrics score scores accuracy
rate rates value values size
gap paradigm pipeline signal structure evidence observation pair cue condition constraint
objective detail content variation sample reference effort attempt need trade-off
project page github repository
""".split()
)

# Adjectives: inside a phrase only, never alone nor at its end ("large language model", not
# "multimodal large").
ADJECTIVES = frozenset(
    """
large small high low robust multiple single complex accurate consistent limited global local
standard real-world prior general fine-grained computational explicit implicit direct joint
unified generalizable scalable practical reliable stable dynamic adaptive lightweight
powerful good poor fast slow long short open closed full partial additional potential
underlying corresponding relevant common typical unique similar original final initial
visual semantic spatial temporal structural geometric compact
""".split()
)

# Words ending in "-ly" that are nouns, not adverbs (an adverb ends a phrase).
LY_NOUNS = frozenset(
    "anomaly anomalies family assembly supply italy butterfly july monopoly rally ally poly".split()
)
# Words ending in "-ed" that are nouns: a phrase may end with these but with no other "-ed"
# word ("semantic forest constructed" is a verb's object, not a phrase).
ED_NOUNS = frozenset("bed speed seed feed need embed red shed breed".split())

STOPWORDS = frozenset(_ENGLISH.split()) | frozenset(_BOILERPLATE.split())

# Plurals that no suffix rule turns into their singular.
IRREGULAR = {
    "analyses": "analysis",
    "axes": "axis",
    "bases": "basis",
    "children": "child",
    "criteria": "criterion",
    "crises": "crisis",
    "diagnoses": "diagnosis",
    "feet": "foot",
    "hypotheses": "hypothesis",
    "indices": "index",
    "matrices": "matrix",
    "men": "man",
    "mice": "mouse",
    "nuclei": "nucleus",
    "phenomena": "phenomenon",
    "radii": "radius",
    "stimuli": "stimulus",
    "syntheses": "synthesis",
    "teeth": "tooth",
    "theses": "thesis",
    "vertices": "vertex",
    "women": "woman",
}

# Words that end like a plural and are not one.
INVARIANT = frozenset(
    """
news series species lens means bias canvas atlas alias gas chaos thus always perhaps plus
physics robotics graphics dynamics semantics statistics mathematics kinematics linguistics
economics ethics analytics optics mechanics electronics genomics proteomics informatics logistics
acoustics aesthetics photonics biomechanics hydrodynamics thermodynamics pharmacokinetics
diabetes covid mathematics aerodynamics haptics diagnostics
""".split()
)
