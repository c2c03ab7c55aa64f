"""Notifications: one message per day and channel through Apprise, on loopback SMTP and webhooks."""

from __future__ import annotations

import email
import email.policy
import json
import logging
import re
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from arxiv_digest.errors import ConfigError
from arxiv_digest.settings import Settings, _describe_error, load_settings, split_notify_urls
from tasks.import_digest import digest_row_from_markdown
from tasks.lake import Lake, open_lake, papers_table
from tasks.notify import SENT, days_with_failures, load_day_message, notify_days, read_deliveries
from tasks.notify_channels import ChannelSpec, channel_id, check_notify_urls, open_channel, scrub
from tasks.notify_message import (
    CHAT_MAX_CHARS,
    CHAT_PAPERS,
    DayMessage,
    PaperLine,
    chat_message,
    email_html,
    gist,
    summary_lines,
)
from tests.conftest import REFERENCE_DIGEST, free_port, make_paper
from tests.servers.webhook import WebhookServer
from tests.test_cli import assert_one_line_error, nothing_written, run_cli

DAY = date(2026, 6, 30)
SITE = "https://digest.example/site"
HOSTILE = "<script>alert(1)</script> Segment <img src=x onerror=alert(2)> anything"
SUMMARY = (
    "**Executive summary: arXiv Computer Vision papers, 2026-06-29**\n\n"
    "Diffusion models dominate today <b>bold claim</b>.\n\n"
    "**Main themes and trends:**\n\n"
    "*   Video generation gets faster.\n"
    "*   3D reconstruction from a single image.\n"
    "*   A third theme that chat leaves out."
)
SMTP_PASSWORD = "s3cret-pw-9f8e"


def write_day(lake: Lake, day: date = DAY, *, papers: int = 7, selected: int = 6) -> None:
    """A digest day as the pipeline leaves it: papers, rankings, analyses, digest row."""
    ids = [f"2606.{n:05d}" for n in range(1, papers + 1)]
    titles = {i: f"Paper {n} on diffusion" for n, i in enumerate(ids, start=1)}
    titles[ids[0]] = HOSTILE
    lake.write_day(
        "papers",
        day,
        papers_table(
            [
                make_paper(i, title=t, abstract=f"We study {t}. Then more.")
                for i, t in titles.items()
            ]
        ),
    )
    # Ranked in reverse id order: the message follows the rank, not the file's order.
    lake.write_day(
        "rankings",
        day,
        lake.rows(
            "rankings",
            [
                {"arxiv_id": i, "score": 1.0, "source": "llm", "rank": r, "selected": r <= selected}
                for r, i in enumerate(reversed(ids), start=1)
            ],
        ),
    )

    def fields(n: int) -> str | None:
        # Odd papers have analysis fields, even ones none (their gist is the abstract's).
        contribution = f"It speeds up sampling by {n}x. Also other things."
        return json.dumps({"contribution": contribution, "innovations": ["x"]}) if n % 2 else None

    lake.write_day(
        "analyses",
        day,
        lake.rows(
            "analyses",
            [
                {
                    "arxiv_id": i,
                    "version": 1,
                    "template": "abstract",
                    "language": "en",
                    "fields_json": fields(n),
                    "markdown": "Analysis.",
                    "status": "ok",
                }
                for n, i in enumerate(ids, start=1)
            ],
        ),
    )
    lake.write_day(
        "digests",
        day,
        lake.rows(
            "digests",
            [
                {
                    "topic": "Computer Vision",
                    "language": "en",
                    "markdown": "# digest",
                    "executive_summary": SUMMARY,
                    "paper_count": selected,
                    "config_hash": "h",
                }
            ],
        ),
    )


def with_urls(*urls: str) -> Settings:
    return load_settings(notify_urls=" ".join(urls))


@pytest.fixture
def lake(settings: Settings) -> Lake:
    lake = open_lake(settings)
    write_day(lake)
    return lake


class Mailbox:
    """What the loopback SMTP server accepted (after a login with SMTP_PASSWORD)."""

    def __init__(self) -> None:
        self.messages: list[email.message.EmailMessage] = []

    async def handle_DATA(self, server, session, envelope) -> str:
        self.messages.append(
            email.message_from_bytes(envelope.original_content, policy=email.policy.default)
        )
        return "250 OK"


@pytest.fixture
def smtp() -> Iterator[tuple[Mailbox, int]]:
    """aiosmtpd on loopback, plain SMTP with AUTH (no TLS, so no certificate is needed)."""

    def authenticate(server, session, envelope, mechanism, auth_data) -> AuthResult:
        ok = isinstance(auth_data, LoginPassword) and auth_data.password == SMTP_PASSWORD.encode()
        return AuthResult(success=ok)

    mailbox = Mailbox()
    port = free_port()
    controller = Controller(
        mailbox,
        hostname="127.0.0.1",
        port=port,
        authenticator=authenticate,
        auth_require_tls=False,
    )
    controller.start()
    yield mailbox, port
    controller.stop()


def mailto(port: int, password: str = SMTP_PASSWORD) -> str:
    """Apprise's URL of a plain (not TLS) SMTP server on loopback: `mailto://` (not mailtos)
    with an explicit port; user and password log in, `from` and `to` are the envelope."""
    return (
        f"mailto://digest:{password}@127.0.0.1:{port}?from=digest@example.com&to=reader@example.com"
    )


@pytest.fixture
def webhook() -> Iterator[WebhookServer]:
    with WebhookServer() as server:
        yield server


def parts(message: email.message.EmailMessage) -> dict[str, str]:
    return {
        part.get_content_type(): part.get_content()
        for part in message.walk()
        if not part.is_multipart()
    }


# ---------------------------------------------------------------------------------------------
# Email over SMTP
# ---------------------------------------------------------------------------------------------


def test_email_arrives_with_dated_subject_html_and_text_parts_and_links(lake, smtp):
    mailbox, port = smtp
    summary = notify_days(with_urls(mailto(port)), lake, [DAY], site_base_url=SITE)

    assert (summary.sent, summary.failed) == (1, 0)
    [message] = mailbox.messages
    assert message["Subject"] == "arXiv Computer Vision digest 2026-06-30: 6 papers"
    assert message.get_content_type() == "multipart/alternative"
    body = parts(message)
    html, text = body["text/html"], body["text/plain"]
    # Best first: rank 1 is the last id; the hostile title (rank 7) was not selected.
    first = "2606.00007v1"
    assert html.index(first) < html.index("2606.00006v1") < html.index("2606.00002v1")
    assert "2606.00001v1" not in html
    assert f'href="https://arxiv.org/abs/{first}"' in html
    assert f'href="https://arxiv.org/pdf/{first}"' in html
    assert f'href="{SITE}/2026-06-30.html#{first}"' in html
    assert f'href="{SITE}/2026-06-30.html"' in html
    assert "Diffusion models dominate today &lt;b&gt;bold claim&lt;/b&gt;." in html
    assert "It speeds up sampling by 7x." in html  # the analysis's gist
    assert "We study Paper 6 on diffusion." in html  # no analysis fields: the abstract's
    # The plain-text alternative (Apprise makes it from the HTML) keeps every address.
    for url in (
        f"https://arxiv.org/abs/{first}",
        f"https://arxiv.org/pdf/{first}",
        f"{SITE}/2026-06-30.html#{first}",
    ):
        assert url in text
    assert "Diffusion models dominate today <b>bold claim</b>." in text


def test_hostile_title_is_text_in_the_email(settings, smtp):
    mailbox, port = smtp
    lake = open_lake(settings)
    write_day(lake, papers=2, selected=2)

    notify_days(with_urls(mailto(port)), lake, [DAY])

    html = parts(mailbox.messages[0])["text/html"]
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<script" not in html and "<img" not in html
    assert "onerror" not in html.replace("&lt;img src=x onerror=alert(2)&gt;", "")


def test_second_run_sends_nothing_and_resend_sends_again(lake, smtp):
    mailbox, port = smtp
    settings = with_urls(mailto(port))

    first = notify_days(settings, lake, [DAY])
    again = notify_days(settings, lake, [DAY])
    assert (first.sent, again.sent, again.skipped) == (1, 0, 1)
    assert len(mailbox.messages) == 1

    forced = notify_days(settings, lake, [DAY], resend=True)
    assert forced.sent == 1 and len(mailbox.messages) == 2
    [row] = read_deliveries(lake, DAY).values()
    assert (row.status, row.attempts, row.error) == (SENT, 2, None)
    assert row.channel == channel_id(mailto(port)) and mailto(port) not in repr(row)


# ---------------------------------------------------------------------------------------------
# Chat over a JSON webhook
# ---------------------------------------------------------------------------------------------


def test_webhook_gets_a_short_message_with_the_top_five_links(lake, webhook):
    summary = notify_days(with_urls(webhook.apprise_url), lake, [DAY], site_base_url=SITE)

    assert summary.sent == 1
    [post] = webhook.posts
    assert post.payload["title"] == "arXiv Computer Vision · 2026-06-30 · 6 papers"
    message = post.payload["message"]
    assert message.splitlines()[:3] == [
        "Diffusion models dominate today <b>bold claim</b>.",
        "Video generation gets faster.",
        "3D reconstruction from a single image.",
    ]
    links = [line for line in message.splitlines() if line.startswith("https://arxiv.org/abs/")]
    assert links == [f"https://arxiv.org/abs/2606.0000{n}v1" for n in (7, 6, 5, 4, 3)]
    assert message.endswith(f"Full digest: {SITE}/2026-06-30.html")
    assert len(message) <= CHAT_MAX_CHARS


@pytest.mark.parametrize("fault", ["nothing listening", "answers 500"])
def test_refused_channel_is_recorded_without_secrets_and_retried_by_the_next_run(
    lake, webhook, fault, caplog
):
    port = free_port()
    # Secrets in every part of the URL: password, path token, a header's value.
    refused_url = f"json://hook:pw-TOPSECRET@127.0.0.1:{port}/hooks/PATHTOKEN42?+X-Token=HDRSECRET"
    settings = with_urls(refused_url, webhook.apprise_url)
    refused = WebhookServer(port=port, status=500)
    if fault == "answers 500":
        refused.start()
    caplog.set_level(logging.DEBUG)
    try:
        first = notify_days(settings, lake, [DAY])

        # The working channel, listed second, got its message all the same.
        assert (first.sent, first.failed) == (1, 1) and len(webhook.posts) == 1
        row = read_deliveries(lake, DAY)[("default", channel_id(refused_url))]
        assert (row.status, row.attempts) == ("failed", 1)
        assert row.error and ("500" in row.error if fault == "answers 500" else row.error)
        lake_file = Path(lake.day_path("deliveries", DAY)).read_bytes()
        for secret in ("TOPSECRET", "PATHTOKEN42", "HDRSECRET", "127.0.0.1", str(port)):
            assert secret not in row.error
            assert secret.encode() not in lake_file
            assert secret not in caplog.text
        assert f"channel #1 json:// ({channel_id(refused_url)}) failed" in caplog.text

        assert days_with_failures(lake) == [DAY]

        refused.status = 200
        if fault == "nothing listening":
            refused.start()
        second = notify_days(settings, lake, [DAY])
        assert (second.sent, second.skipped, second.failed) == (1, 1, 0)
        assert len(webhook.posts) == 1 and len(refused.posts) == 1 + (fault == "answers 500")
        row = read_deliveries(lake, DAY)[("default", channel_id(refused_url))]
        assert (row.status, row.attempts, row.error) == ("sent", 2, None)
        assert days_with_failures(lake) == []

        assert notify_days(settings, lake, [DAY]).sent == 0  # and then nothing more
    finally:
        refused.stop()


def test_each_outcome_is_in_the_lake_before_the_next_send(lake, webhook):
    with WebhookServer() as second:
        seen: list[dict] = []
        second.on_post = lambda post: seen.append(read_deliveries(lake, DAY))
        settings = with_urls(webhook.apprise_url, second.apprise_url)
        notify_days(settings, lake, [DAY])
    [deliveries] = seen
    assert list(deliveries) == [("default", channel_id(webhook.apprise_url))]


def test_day_without_digest_sends_nothing(settings, webhook):
    lake = open_lake(settings)
    summary = notify_days(with_urls(webhook.apprise_url), lake, [DAY])
    assert summary.days_without_digest == [DAY] and summary.sent == 0 and not webhook.posts
    assert read_deliveries(lake, DAY) == {}


# ---------------------------------------------------------------------------------------------
# Settings and preflight
# ---------------------------------------------------------------------------------------------


def test_notify_urls_split_on_whitespace_and_commas_but_not_inside_a_url():
    text = "mailto://u:p@h?to=a@x.org,b@x.org, json://h/\n slack://a/b/c,tgram://1:x/2"
    assert split_notify_urls(text) == [
        "mailto://u:p@h?to=a@x.org,b@x.org",
        "json://h/",
        "slack://a/b/c",
        "tgram://1:x/2",
    ]
    assert split_notify_urls("  ") == []


def test_notify_urls_are_secret_in_settings(settings_env, monkeypatch):
    monkeypatch.setenv("DIGEST_NOTIFY_URLS", "json://user:SECRETPW@host/ tgram://BOT:TOKEN/42")
    settings = load_settings()
    assert [u.get_secret_value() for u in settings.notify_urls][1] == "tgram://BOT:TOKEN/42"
    shown = repr(settings) + settings.model_dump_json()
    assert "SECRETPW" not in shown and "TOKEN" not in shown
    error = {"loc": ("notify_urls", 0), "msg": "bad", "input": "json://user:SECRETPW@host/"}
    assert "SECRETPW" not in _describe_error(error)


@pytest.mark.parametrize(
    ("urls", "named"),
    [
        ("json://127.0.0.1:9/ slack://ONLY-ONE-TOKEN-SECRET", "#2 slack://"),
        ("NOTAURL-SECRET, json://127.0.0.1:9/", "#1 unknown://"),
        ("json://127.0.0.1:9/ madeup://SECRET@host", "#2 unknown://"),
    ],
)
def test_preflight_rejects_a_url_apprise_cannot_use_without_showing_it(settings_env, urls, named):
    with pytest.raises(ConfigError) as caught:
        check_notify_urls(with_urls(urls))
    assert f"DIGEST_NOTIFY_URLS: URL {named} (" in str(caught.value)
    assert "SECRET" not in str(caught.value)


def test_preflight_accepts_each_example_url_of_the_readme(settings_env):
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Notifications\n", 1)[1].split("\n## ", 1)[0]
    examples = re.findall(r"`([a-z]+://[^`]+)`", section)
    schemes = {url.split("://")[0] for url in examples}
    assert {
        "mailtos",
        "slack",
        "tgram",
        "lark",
        "feishu",
        "dingtalk",
        "wecombot",
        "json",
    } <= schemes
    check_notify_urls(with_urls(*examples))


def test_run_with_an_unusable_notify_url_is_one_line_error_before_anything_is_written(
    settings_env, monkeypatch, capsys
):
    monkeypatch.setenv("DIGEST_NOTIFY_URLS", "json://127.0.0.1:9/ slack://ONLY-ONE-SECRET")
    code, _, err = run_cli(capsys, "run", "--date", "2026-06-30")
    assert_one_line_error(code, err, "DIGEST_NOTIFY_URLS: URL #2 slack://")
    assert "SECRET" not in err and nothing_written(settings_env)


def test_scrub_removes_every_part_of_the_url():
    url = "slack://T1JJ3T3L2/A1BRTD4JD/TIiajkd%2Fnlaz/#digest-chan?footer=no"
    text = "Failed on T1JJ3T3L2 A1BRTD4JD TIiajkd/nlaz digest-chan: error=404"
    assert scrub(text, url) == "Failed on *** *** *** ***: error=404"


# ---------------------------------------------------------------------------------------------
# Messages (pure)
# ---------------------------------------------------------------------------------------------


def message(papers: int = 8, title: str = "A title", summary: str = SUMMARY) -> DayMessage:
    return DayMessage(
        day=DAY,
        topic="Computer Vision",
        language="en",
        summary_md=summary,
        paper_count=papers,
        papers=tuple(
            PaperLine(
                f"2606.{n:05d}v1",
                f"{title} {n}",
                "It works.",
                f"https://arxiv.org/abs/2606.{n:05d}v1",
                f"https://arxiv.org/pdf/2606.{n:05d}v1",
                None,
            )
            for n in range(1, papers + 1)
        ),
        day_url=f"{SITE}/2026-06-30.html",
    )


@pytest.mark.parametrize(
    "url",
    [
        "tgram://123456789:AAE-exampleBotToken/12315544",  # 4096, no title, HTML
        "slack://T1JJ3T3L2/A1BRTD4JD/TIiajkdnlazkcOXrIdevi7FQ/#digest",  # Markdown
        "discord://1234/abcdef",  # 2000
        "rocket://user:pass@chat.example/#general",  # 1000, no title
        "wecombot://botkey1234567890",  # no title
        "feishu://abcdefghij1234567890",
    ],
)
def test_chat_message_fits_the_channels_limits_even_when_everything_is_long(url):
    service = open_channel(url)
    assert service is not None and service.spec.kind == "chat"
    spec = service.spec
    long_title = "Very & <long> " * 40  # HTML channels see each & and < as an entity
    summary = "\n\n".join(f"Overview {n} " + "word & <more> " * 80 for n in range(3))
    out = chat_message(message(title=long_title, summary=summary), spec)
    room = min(spec.body_limit, CHAT_MAX_CHARS)
    if spec.title_limit <= 0:
        room -= spec.measure(out.title) + 2
    else:
        assert len(out.title) <= spec.title_limit
    assert 0 < spec.measure(out.body) <= room
    assert "https://arxiv.org/abs/2606.00001v1" in out.body  # the best paper survives


def test_chat_message_lists_five_papers_and_three_summary_lines():
    out = chat_message(message(), ChannelSpec("chat", 4096, 250))
    assert out.body.count("https://arxiv.org/abs/") == CHAT_PAPERS
    assert out.body.split("\n\n")[0].count("\n") == 2  # three lines


@pytest.mark.parametrize(
    ("url", "kind"),
    [
        ("mailto://user:pw@example.com", "email"),
        ("mailtos://user:pw@smtp.example.com?to=a@example.com", "email"),
        ("sendgrid://apikey:from@example.com/to@example.com", "email"),
        ("json://127.0.0.1:8080/", "chat"),
        ("tgram://123456789:AAE-exampleBotToken/12315544", "chat"),
        ("dingtalk://securetoken1234567890", "chat"),
        ("lark://abcdefghij1234567890", "chat"),
    ],
)
def test_channel_kind_comes_from_the_apprise_plugin(url, kind):
    service = open_channel(url)
    assert service is not None and service.spec.kind == kind


def test_email_html_escapes_titles_gists_and_summary_and_drops_summary_links():
    hostile = DayMessage(
        day=DAY,
        topic="CV <i>",
        language="en",
        summary_md=(
            "See [this](javascript:alert(1)) and [that](https://evil.example) <script>x</script>"
        ),
        paper_count=1,
        papers=(
            PaperLine(
                "2606.00001v1",
                HOSTILE,
                '"><svg onload=alert(3)>',
                "https://arxiv.org/abs/2606.00001v1",
                "https://arxiv.org/pdf/2606.00001v1",
                None,
            ),
        ),
        day_url=None,
    )
    html = email_html(hostile)
    for raw in ("<script", "<img", "<svg", "<i>", 'href="javascript:', "evil.example"):
        assert raw not in html
    assert "See [this](javascript:alert(1)) and that" in html  # not a link: shown as text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html and "CV &lt;i&gt;" in html


def test_gist_is_the_analysis_first_sentence_else_the_abstracts():
    assert gist({"contribution": "Faster sampling. And more."}, "Abstract.") == "Faster sampling."
    assert gist({"research_question": "为何有效？其次。"}, "x") == "为何有效？"
    assert gist(None, "We study X, e.g. here. Then Y.") == "We study X, e.g. here."
    assert len(gist(None, "word " * 100)) <= 200


def test_summary_lines_skip_labels_and_keep_paragraphs_and_items():
    assert summary_lines(SUMMARY) == [
        "Diffusion models dominate today <b>bold claim</b>.",
        "Video generation gets faster.",
        "3D reconstruction from a single image.",
    ]


def test_imported_digest_is_announced_with_its_own_papers(settings):
    lake = open_lake(settings)
    text = REFERENCE_DIGEST.read_text(encoding="utf-8")
    day, row = digest_row_from_markdown(text)
    lake.write_day("digests", day, lake.rows("digests", [row]))
    message = load_day_message(lake, day, site_base_url=SITE)
    assert message is not None and len(message.papers) == 10
    assert message.papers[0].title.startswith("SIMA 2")
    assert message.papers[0].site_url == f"{SITE}/{day}.html#{message.papers[0].arxiv_id}"
    assert message.language == "zh"
