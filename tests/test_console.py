"""The web console (/console) in a real browser (Chromium through Playwright) against a real gateway in keys mode:
fake providers (tests/fakes/) and fake open-model workers behind it, each a real server on loopback.

Each test clicks through one thing a person does: sign in (a wrong key says so), chat with streaming, see tool calls
and provider errors as such, run an embedding model, compare two models, watch an instance come and go in the
cluster view, create and revoke a key and see its usage charted. Model output is text, never markup (XSS)."""

from __future__ import annotations

import base64
import re
import threading
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Page, expect

from unimodel.store.views import RECORD_FIELDS

from .browser import browser_fixture, page_fixture, shot  # noqa: F401  (fixtures)
from .conftest import OPENAI_KEY, Fake
from .fakes.openai_media_fake import create_media_app, wav
from .fakes.script import FakeReply
from .fakes.server import LiveServer
from .platform_helpers import OPEN_CHAT, Platform, PlatformFactory
from .served import serve

EMBED = "acme/tiny-embed"
ZERO_SHOT = "acme/zero-shot"
BROKEN = "acme/broken-chat"
MODELS = [
    {
        "id": OPEN_CHAT,
        "task": "chat",
        "max_instances": 2,
        "instance_concurrency": 2,
        "idle_timeout_s": 2,
        "engine_args": {"load_s": 0.2, "delay_s": 0.3},
    },
    {"id": EMBED, "task": "feature-extraction", "max_instances": 1, "idle_timeout_s": 60},
    {"id": ZERO_SHOT, "task": "zero-shot-classification", "max_instances": 1, "idle_timeout_s": 60},
    {"id": BROKEN, "task": "chat", "max_instances": 1, "engine_args": {"fail_load": True}},
]
PIXEL = (  # a 2x2 PNG
    "iVBORw0KGgoAAAANSUhEUgAAAAIAAAACCAIAAAD91JpzAAAAFklEQVR4nGP8z8DAwMDAxMDAwMDAAAANHQEDasKb6QAAAABJRU5ErkJggg=="
)


@pytest.fixture
def console(platform_factory: PlatformFactory) -> Platform:
    return platform_factory(models=MODELS)


def sign_in(page: Page, p: Platform, key: str | None = None, route: str = "playground") -> None:
    page.goto(f"{p.url}/console/#/{route}")
    page.get_by_label("Gateway key").fill(key or p.admin_key)
    page.get_by_role("button", name="Use this key").click()
    expect(page.get_by_test_id("key-state").first).to_have_text("Gateway key set")


def pick(page: Page, model: str) -> None:
    page.get_by_test_id("model-a").fill(model)
    page.get_by_test_id("model-a").dispatch_event("change")


def set_openai_key(page: Page) -> None:
    page.get_by_label("openai provider key").fill(OPENAI_KEY)
    page.get_by_role("button", name="Set", exact=True).click()
    expect(page.get_by_test_id("provider-key-openai")).to_have_text("openai key: set (this tab only)")


def say(page: Page, text: str) -> None:
    page.get_by_test_id("prompt").fill(text)
    page.get_by_test_id("send").click()


def test_console_files_load_without_a_key_while_its_apis_need_one(console: Platform) -> None:
    html = httpx.get(console.url + "/console/")
    assert html.status_code == 200 and '<script type="module" src="js/main.js">' in html.text
    csp = html.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp
    assert html.headers["x-content-type-options"] == "nosniff"
    script = httpx.get(console.url + "/console/js/main.js")
    assert script.status_code == 200 and "javascript" in script.headers["content-type"]
    assert httpx.get(console.url + "/console/vendor/uplot/LICENSE").status_code == 200
    redirect = httpx.get(console.url + "/", headers={"accept": "text/html"})
    assert (redirect.status_code, redirect.headers["location"]) == (307, "/console/")
    assert httpx.get(console.url + "/").json()["name"] == "unimodel"  # API clients still get JSON
    assert httpx.get(console.url + "/console/no-such-file.js").status_code == 404
    assert httpx.get(console.url + "/models/v2/list/models").status_code == 401  # every API call needs a key
    bad = httpx.get(console.url + "/models/v2/list/clusters", params={"history": "maybe"}, headers=console.admin)
    assert (bad.status_code, bad.json()["code"]) == (400, "invalid_request") and "history" in bad.json()["error"]


def test_a_wrong_key_is_refused_with_a_clear_message(console: Platform, page: Page) -> None:
    page.goto(console.url + "/console/")
    expect(page.get_by_role("alert")).to_contain_text("401")
    page.get_by_label("Gateway key").fill("um_not-a-real-key")
    page.get_by_role("button", name="Use this key").click()
    alert = page.get_by_role("alert")
    expect(alert).to_contain_text("The server refused this key")
    expect(page.get_by_test_id("key-state")).to_have_text("No gateway key")
    assert page.evaluate("sessionStorage.getItem('unimodel.key')") is None
    shot(page, "sign-in")


def test_a_streamed_chat_shows_the_answer_and_never_the_provider_key(
    console: Platform, openai_fake: Fake, page: Page
) -> None:
    openai_fake.script.push(FakeReply(text="Paris is the capital of France.", chunk_delay_s=0.05))
    sign_in(page, console)
    pick(page, "openai/gpt-4o")
    set_openai_key(page)
    page.get_by_text("System prompt and parameters").click()
    page.get_by_label("System prompt").fill("Be brief.")
    say(page, "What is the capital of France?")
    answer = page.get_by_test_id("answer").last
    expect(answer).to_have_text("Paris is the capital of France.")
    expect(page.get_by_test_id("meta").last).to_contain_text("out tokens")
    sent = openai_fake.script.last_request
    assert sent.json["stream"] is True
    assert sent.json["messages"][0] == {"role": "system", "content": "Be brief."}
    assert sent.headers["authorization"] == f"Bearer {OPENAI_KEY}"  # the typed key reached the provider
    page.get_by_role("button", name="Show code").click()
    curl = page.get_by_test_id("code-curl").inner_text()
    assert "/v1/chat/completions" in curl and "$PROVIDER_KEY" in curl and "What is the capital" in curl
    expect(page.get_by_test_id("code-openai")).to_contain_text('base_url="' + console.url + '/v1"')
    expect(page.get_by_test_id("code-bytez")).to_contain_text("provider_key=os.environ")
    shot(page, "playground")
    assert OPENAI_KEY not in page.content() and console.admin_key not in page.content()  # nothing shows a secret


def test_the_keyboard_alone_sends_a_message(console: Platform, openai_fake: Fake, page: Page) -> None:
    openai_fake.script.push(FakeReply(text="Typed and sent."))
    sign_in(page, console)
    pick(page, "openai/gpt-4o")
    set_openai_key(page)
    page.get_by_test_id("prompt").focus()
    page.keyboard.type("no mouse here")
    page.keyboard.press("Control+Enter")
    expect(page.get_by_test_id("answer").last).to_have_text("Typed and sent.")


def test_unimodel_serve_serves_the_console_from_its_package(tmp_path: Path, page: Page) -> None:
    """The real server process, as `make serve` starts it: the console with nothing else to run."""
    with serve(tmp_path) as served:
        page.goto(served.url)  # the root, as a browser asks for it
        expect(page).to_have_url(served.url + "/console/")
        expect(page.get_by_role("heading", name="Playground")).to_be_visible()
        expect(page.get_by_test_id("key-state")).to_have_text("No gateway key")
        for asset in ("/console/console.css", "/console/js/tasks.js", "/console/vendor/uplot/uPlot.esm.js"):
            assert httpx.get(served.url + asset).status_code == 200, asset


def test_model_output_is_shown_as_text_never_run(console: Platform, openai_fake: Fake, page: Page) -> None:
    evil = '<img src=x onerror="window.__xss=1"><script>window.__xss=2</script>'
    openai_fake.script.push(FakeReply(text=evil))
    sign_in(page, console)
    pick(page, "openai/gpt-4o")
    set_openai_key(page)
    say(page, "say something nasty")
    expect(page.get_by_test_id("answer").last).to_have_text(evil)
    assert page.locator("#main img").count() == 0 and page.locator("#main script").count() == 0
    assert page.evaluate("window.__xss") is None


def test_tool_calls_are_shown_as_tool_calls(console: Platform, openai_fake: Fake, page: Page) -> None:
    openai_fake.script.push(FakeReply(tool_calls=[("get_weather", {"city": "Paris"})]))
    sign_in(page, console)
    pick(page, "openai/gpt-4o")
    set_openai_key(page)
    page.get_by_text("System prompt and parameters").click()
    page.get_by_label("Tools (JSON, OpenAI's format)").fill(
        '[{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object", '
        '"properties": {"city": {"type": "string"}}}}}]'
    )
    say(page, "Weather in Paris?")
    call = page.get_by_test_id("tool-call")
    expect(call).to_contain_text("get_weather")
    expect(call).to_contain_text('"city": "Paris"')
    assert openai_fake.script.last_request.json["tools"][0]["function"]["name"] == "get_weather"


def test_provider_errors_and_a_cut_stream_are_shown_with_their_message(
    console: Platform, openai_fake: Fake, page: Page
) -> None:
    openai_fake.script.push(
        FakeReply(status=400, error_message="This model's maximum context length is 8 tokens."),
        FakeReply(text="one two three four five six", cut_stream_after=2),
    )
    sign_in(page, console)
    pick(page, "openai/gpt-4o")
    set_openai_key(page)
    say(page, "first")
    alert = page.get_by_role("alert").last
    expect(alert).to_contain_text("400")
    expect(alert).to_contain_text("maximum context length is 8 tokens")
    say(page, "second")
    expect(page.get_by_role("alert").last).to_contain_text(re.compile("cut|ended|incomplete|stream", re.I))


def test_an_embedding_run_shows_vectors_and_their_similarity(console: Platform, page: Page) -> None:
    sign_in(page, console)
    pick(page, EMBED)
    expect(page.get_by_test_id("task")).to_contain_text("feature-extraction")
    say(page, "a cat\na kitten\nan invoice")
    table = page.get_by_test_id("embeddings")
    expect(table.locator("tbody tr")).to_have_count(3)
    expect(table.locator("tbody tr").first).to_contain_text("a cat")
    expect(table.locator("tbody tr").first.locator("td").nth(1)).to_have_text("8")
    expect(page.get_by_test_id("similarity").locator("tr")).to_have_count(3)
    assert page.get_by_test_id("similarity").locator("tr").first.locator("td").first.inner_text() == "1.000"


def test_two_models_answer_side_by_side(console: Platform, openai_fake: Fake, page: Page) -> None:
    openai_fake.script.push(FakeReply(text="From the closed model."))
    sign_in(page, console)
    pick(page, "openai/gpt-4o")
    page.get_by_test_id("compare").check()
    page.get_by_test_id("model-b").fill(OPEN_CHAT)
    page.get_by_test_id("model-b").dispatch_event("change")
    set_openai_key(page)
    say(page, "hello both")
    answers = page.get_by_test_id("answer")
    expect(answers).to_have_count(2)
    expect(answers.nth(0)).to_have_text("From the closed model.")
    expect(answers.nth(1)).to_contain_text("hello both", timeout=30_000)  # the fake worker echoes
    panes = page.locator(".pane h2")
    expect(panes).to_have_text(["openai/gpt-4o", OPEN_CHAT])
    shot(page, "compare")


def test_the_cluster_view_shows_an_instance_under_load_and_its_leaving_after_the_idle_timeout(
    console: Platform, page: Page
) -> None:
    sign_in(page, console, route="cluster")
    card = page.locator(f'section.cluster[data-model="{OPEN_CHAT}"]')
    expect(card.get_by_test_id("stat-ready")).to_have_text("0")
    results: list[int] = []

    def load() -> None:
        for _ in range(3):
            r = httpx.post(
                console.url + "/v1/chat/completions",
                json={"model": OPEN_CHAT, "messages": [{"role": "user", "content": "busy [fake_delay_s=1.2]"}]},
                headers=console.admin,
                timeout=30,
            )
            results.append(r.status_code)

    worker = threading.Thread(target=load)
    worker.start()
    expect(card.get_by_test_id("stat-ready")).to_have_text("1", timeout=15_000)
    expect(card.get_by_test_id("cluster-status")).to_have_text("running")
    expect(card.get_by_test_id("stat-in-flight")).to_have_text("1")
    expect(card.get_by_test_id("replicas").locator("tbody tr")).to_have_text(re.compile(r"ready\s*127\.0\.0\.1\s*1"))
    expect(card.locator("canvas").first).to_be_visible()  # the chart of instances and load
    expect(card.get_by_test_id("decisions")).to_contain_text("0 → 1 (cold start)")
    shot(page, "cluster")
    worker.join()
    assert results == [200, 200, 200]
    expect(card.get_by_test_id("stat-inferences")).to_have_text("3")
    expect(card.get_by_test_id("stat-service")).to_have_text(re.compile(r"^\d+\.\d\d s / \d+\.\d\d s$"))
    # idle_timeout_s = 2: the instance goes once the model has had no work that long
    expect(card.get_by_test_id("stat-ready")).to_have_text("0", timeout=20_000)
    expect(card.get_by_test_id("cluster-status")).to_have_text("idle")
    expect(card.get_by_test_id("decisions").locator("li").first).to_contain_text("1 → 0 (scale to zero)")
    expect(card.get_by_test_id("replicas")).to_have_count(0)
    cluster = httpx.get(console.url + f"/models/v2/{OPEN_CHAT}", headers=console.admin).json()["output"]
    assert (cluster["inFlight"], cluster["queueDepth"], cluster["coldStarts"]) == (0, 0, 1)
    assert cluster["lastStartS"] > 0 and [d["reason"] for d in cluster["decisions"]] == ["cold start", "scale to zero"]
    rows = httpx.get(console.url + f"/models/v2/{OPEN_CHAT}", params={"history": "1"}, headers=console.admin).json()[
        "output"
    ]["history"]
    assert rows["fields"] == ["time", "ready", "starting", "draining", "inFlight", "queueDepth"]
    assert max(r[1] for r in rows["rows"]) == 1 and max(r[4] for r in rows["rows"]) == 1 and rows["rows"][-1][1] == 0
    page.reload()  # a new visit's chart starts with the last minutes, not empty
    chart = page.locator(f'section.cluster[data-model="{OPEN_CHAT}"]').get_by_test_id("cluster-chart")
    expect(chart).to_have_attribute("data-points", re.compile(r"^([2-9]\d|\d{3})$"))
    latency = cluster["latency"]
    assert latency["requests"] == 3 and 1.2 <= latency["serviceP50S"] <= latency["serviceP99S"] < 5
    assert 0 <= latency["waitP50S"] <= latency["waitP99S"]


def test_the_cluster_buttons_change_the_cluster_through_its_api(console: Platform, page: Page) -> None:
    sign_in(page, console, route="cluster")
    card = page.locator(f'section.cluster[data-model="{OPEN_CHAT}"]')
    card.get_by_text("Change this cluster").click()
    card.get_by_label("max", exact=True).fill("5")
    card.get_by_role("button", name="Set capacity").click()
    expect(card.get_by_role("alert")).to_contain_text("above this model's max_instances (2)")
    card.get_by_label("max", exact=True).fill("2")
    card.get_by_label("min", exact=True).fill("1")
    card.get_by_label("desired").fill("1")
    card.get_by_role("button", name="Set capacity").click()
    expect(card.get_by_test_id("stat-capacity")).to_have_text("1 / 1 / 2")
    expect(card.get_by_test_id("stat-ready")).to_have_text("1", timeout=15_000)
    card.get_by_role("button", name="Turn off").click()
    expect(card.get_by_test_id("cluster-status")).to_have_text("off")
    r = httpx.post(console.url + f"/models/v2/{OPEN_CHAT}", json={"input": "hi"}, headers=console.admin)
    assert (r.status_code, r.json()["code"]) == (503, "model_off")
    card.get_by_role("button", name="Turn on").click()
    expect(card.get_by_test_id("stat-ready")).to_have_text("1", timeout=15_000)  # min 1 holds one again
    card.get_by_role("button", name="Stop instances").click()  # DELETE: its instances stopped, the model off
    expect(card.get_by_test_id("cluster-status")).to_have_text("off")
    expect(card.get_by_test_id("stat-ready")).to_have_text("0", timeout=15_000)


def test_a_key_is_created_used_charted_and_revoked(console: Platform, openai_fake: Fake, page: Page) -> None:
    sign_in(page, console, route="keys")
    page.get_by_test_id("new-key-name").fill("team-console")
    page.get_by_role("button", name="Create").click()
    secret = page.get_by_test_id("new-secret").inner_text()
    assert secret.startswith("um_")
    row = page.locator("tr", has_text="team-console")
    key_id = row.get_attribute("data-key-id")
    assert key_id is not None and key_id.startswith("key_")
    for _ in range(3):  # calls made with the new key show in its usage
        r = httpx.post(
            console.url + "/v1/chat/completions",
            json={"model": "openai/gpt-4o", "messages": [{"role": "user", "content": "count me"}]},
            headers={"authorization": f"Bearer {secret}", "provider-key": OPENAI_KEY},
        )
        assert r.status_code == 200, r.text
    page.get_by_role("button", name="Done, hide it").click()
    expect(page.get_by_test_id("new-secret")).to_have_count(0)
    assert secret not in page.content()  # shown once
    page.get_by_label("Key id").fill(key_id)
    page.get_by_role("button", name="Refresh").click()
    expect(page.get_by_test_id("total-requests")).to_have_text("3")
    expect(page.get_by_test_id("records").locator("tbody tr")).to_have_count(3)
    chart = page.get_by_test_id("chart-requests-per-key")
    expect(chart.locator("canvas")).to_have_count(1)
    expect(chart).to_contain_text(f"team-console ({key_id})")  # the legend names the key
    with page.expect_download() as download:
        page.get_by_role("button", name="Export CSV").click()
    csv = Path(download.value.path()).read_text().splitlines()
    assert csv[0].startswith("time,requestId,keyId,model") and len(csv) == 4 and key_id in csv[1]
    page.get_by_label("Key id").fill("")
    page.get_by_role("button", name="Refresh").click()
    shot(page, "keys-and-usage")
    row.get_by_label("rps of team-console").fill("7")
    row.get_by_role("button", name="Set limits").click()
    expect(page.get_by_role("status").filter(has_text="Limits of team-console: done")).to_be_visible()
    assert (
        httpx.get(console.url + f"/models/v2/admin/keys/{key_id}", headers=console.admin).json()["output"]["rps"] == 7
    )
    row.get_by_label("provider for team-console").fill("openai")
    row.get_by_label("provider key for team-console").fill(OPENAI_KEY)
    row.get_by_role("button", name="Store").click()
    expect(row.get_by_test_id("stored-provider")).to_have_text("openai: set")
    assert OPENAI_KEY not in page.content()
    row.get_by_role("button", name="Revoke").click()
    expect(row.get_by_test_id("key-state")).to_contain_text("revoked")
    refused = httpx.get(console.url + "/models/v2/list/models", headers={"authorization": f"Bearer {secret}"})
    assert refused.status_code == 401


def test_admin_pages_ask_for_an_admin_key(console: Platform, page: Page) -> None:
    _, plain = console.create_key("not-admin")
    sign_in(page, console, key=plain, route="keys")
    expect(page.get_by_role("heading", name="An admin key is needed")).to_be_visible()
    expect(page.get_by_role("alert")).to_contain_text("not an admin key")


def test_the_models_page_lists_what_the_server_can_run(console: Platform, page: Page) -> None:
    sign_in(page, console, route="models")
    table = page.get_by_test_id("catalog")
    expect(table.locator(f'tr[data-model="{OPEN_CHAT}"]')).to_contain_text("open (runs here)")
    expect(table.locator('tr[data-model="openai/gpt-4o"]')).to_contain_text("closed · openai")
    page.get_by_label("Filter").fill("tiny-embed")
    expect(table.locator("tbody tr")).to_have_count(1)
    shot(page, "models")


def test_in_open_mode_the_console_just_works(gateway_factory: object, page: Page) -> None:
    live = gateway_factory()  # type: ignore[operator]
    page.goto(live.url + "/")  # a browser at the root lands on the console
    expect(page).to_have_url(re.compile(r"/console/#?/?$|/console/$"))
    expect(page.get_by_role("heading", name="Playground")).to_be_visible()
    expect(page.get_by_test_id("key-state")).to_have_text("No gateway key")


def test_a_task_run_takes_its_own_inputs(console: Platform, page: Page) -> None:
    sign_in(page, console)
    pick(page, "someone/unlisted-GGUF")  # a Hugging Face id the catalog does not list: the user names its task
    page.get_by_label("Task of a model not listed (a Hugging Face id)").select_option("feature-extraction")
    expect(page.get_by_test_id("task")).to_have_text("feature-extraction · open")
    expect(page.get_by_test_id("prompt")).to_have_attribute("placeholder", "One text per line: each gets a vector")
    pick(page, ZERO_SHOT)
    expect(page.get_by_test_id("unlisted-task")).to_be_hidden()
    expect(page.get_by_label("Candidate labels (comma-separated)")).to_be_visible()
    expect(page.get_by_label("Attach an image")).to_be_hidden()
    page.get_by_label("Candidate labels (comma-separated)").fill("sports, politics")
    say(page, "The match ended 2-1.")
    expect(page.get_by_test_id("answer").last).to_have_text("echo: The match ended 2-1.")  # the fake worker echoes
    page.get_by_test_id("prompt").fill("Parliament met today.")
    page.get_by_role("button", name="Show code").click()
    curl = page.get_by_test_id("code-curl").inner_text()
    assert f"/models/v2/{ZERO_SHOT}" in curl and '"candidate_labels":["sports","politics"]' in curl
    expect(page.get_by_test_id("code-bytez")).to_contain_text('"candidate_labels": [')
    expect(page.get_by_test_id("code-openai")).to_contain_text(
        "The OpenAI SDK has no call for zero-shot-classification"
    )


def test_task_outputs_are_drawn_as_widgets_with_their_text_as_text(console: Platform, page: Page) -> None:
    """The output views of the vision and classification tasks, fed the outputs PROTOCOL.md gives them."""
    sign_in(page, console)
    evil = "<img src=x onerror=window.__xss=1>"
    counts = page.evaluate(
        """async ([pixel, evil]) => {
            const { outputView } = await import("/console/js/tasks.js");
            const main = document.getElementById("main");
            const image = "data:image/png;base64," + pixel;
            const boxes = outputView([{score: 0.9, label: evil, box: {xmin: 0, ymin: 0, xmax: 1, ymax: 1}}], image);
            const scores = outputView([{label: "cat", score: 0.75}, {label: evil, score: 0.25}]);
            const masks = outputView([{label: "sky", score: null, mask: pixel}]);
            const depth = outputView({depth: pixel, width: 2, height: 2, min: 0.1, max: 9.5});
            const elsewhere = outputView("https://elsewhere.example/models/v2/media/abc");
            for (const el of [boxes, scores, masks, depth, elsewhere]) main.append(el);
            await new Promise((r) => setTimeout(r, 200));
            return {
                canvas: boxes.querySelectorAll("canvas").length,
                canvasWidth: boxes.querySelector("canvas").width,
                boxText: boxes.textContent,
                meters: scores.querySelectorAll("meter").length,
                scoreText: scores.textContent,
                maskImages: masks.querySelectorAll("img").length,
                depthText: depth.textContent,
                injected: document.querySelectorAll("img[src=x]").length,
                elsewhere: elsewhere.textContent,
                elsewhereFetched: performance.getEntriesByType("resource").some((e) => e.name.includes("elsewhere")),
            };
        }""",
        [PIXEL, evil],
    )
    assert counts["canvas"] == 1 and counts["canvasWidth"] == 2  # the image drawn at its size, boxes on it
    assert evil in counts["boxText"] and "(0, 0)–(1, 1)" in counts["boxText"]
    assert counts["meters"] == 2 and "0.75" in counts["scoreText"] and evil in counts["scoreText"]
    assert counts["maskImages"] == 1 and "depth from 0.1 to 9.5 (2×2)" in counts["depthText"]
    assert counts["injected"] == 0 and page.evaluate("window.__xss") is None
    # a media URL on another host is shown as a link, never fetched with the user's key
    assert counts["elsewhere"] == "https://elsewhere.example/models/v2/media/abc" and not counts["elsewhereFetched"]


def test_the_console_fits_a_phone_screen(console: Platform, page: Page) -> None:
    page.set_viewport_size({"width": 390, "height": 844})
    for route in ("playground", "cluster", "keys", "models"):
        if route == "playground":
            sign_in(page, console)
        else:
            page.goto(f"{console.url}/console/#/{route}")
            expect(page.locator("#main h1")).to_be_visible()
        page.wait_for_timeout(300)
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= 390, f"{route} is {width} px wide on a 390 px screen"
        if route == "playground":
            shot(page, "phone-playground")
        unlabelled = page.evaluate(
            """() => [...document.querySelectorAll("#main input, #main select, #main textarea, #main button")]
                .filter((el) => !el.closest("[hidden]"))
                .filter((el) => !(el.labels && el.labels.length) && !el.getAttribute("aria-label")
                                && !(el.tagName === "BUTTON" && el.textContent.trim()))
                .map((el) => el.outerHTML.slice(0, 80))"""
        )
        assert unlabelled == [], f"{route}: controls without a label: {unlabelled}"


def test_a_model_that_fails_to_start_is_shown_with_its_reason(console: Platform, page: Page) -> None:
    sign_in(page, console)
    pick(page, BROKEN)
    say(page, "are you there?")
    alert = page.get_by_role("alert").last
    expect(alert).to_contain_text("503", timeout=30_000)
    expect(alert).to_contain_text(BROKEN)
    page.goto(f"{console.url}/console/#/cluster")
    card = page.locator(f'section.cluster[data-model="{BROKEN}"]')
    expect(card.get_by_test_id("cluster-status")).to_have_text("failed")
    expect(card.get_by_role("alert")).to_contain_text("start_failed")


def test_an_image_attached_to_a_chat_message_goes_as_an_image_part(
    console: Platform, openai_fake: Fake, page: Page, tmp_path: Path
) -> None:
    png = tmp_path / "dot.png"
    png.write_bytes(base64.b64decode(PIXEL))
    sign_in(page, console)
    pick(page, "openai/gpt-4o")
    set_openai_key(page)
    page.get_by_label("Attach an image").set_input_files(str(png))
    say(page, "What is in this picture?")
    expect(page.get_by_test_id("answer").last).not_to_be_empty()
    sent = openai_fake.script.last_request.json["messages"][-1]["content"]
    assert sent[1] == {"type": "image_url", "image_url": {"url": "data:image/png;base64," + PIXEL}}
    expect(page.locator(".msg.user img.thumb")).to_have_count(1)


def test_a_generated_image_is_fetched_with_the_key_and_shown(platform_factory: PlatformFactory, page: Page) -> None:
    """Generated media belongs to the key that made it: the page fetches it with that key, shows it from a blob."""
    with LiveServer(create_media_app(api_key=OPENAI_KEY)) as media:
        console = platform_factory(
            models=MODELS, providers={"openai": {"max_retries": 0, "base_url": media.url + "/v1"}}
        )
        sign_in(page, console)
        pick(page, "openai/dall-e-3")
        set_openai_key(page)
        expect(page.get_by_test_id("task")).to_contain_text("text-to-image")
        say(page, "a lighthouse at night")
        generated = page.get_by_test_id("media").locator("img.generated")
        expect(generated).to_be_visible(timeout=15_000)
        assert generated.evaluate("img => img.naturalWidth > 0 && img.src.startsWith('blob:')")
        page.get_by_role("button", name="Show code").click()
        expect(page.get_by_test_id("code-openai")).to_contain_text('client.images.generate(model="openai/dall-e-3"')


def test_speech_is_played_and_an_uploaded_recording_transcribed(
    platform_factory: PlatformFactory, page: Page, tmp_path: Path
) -> None:
    recording = tmp_path / "hello.wav"
    recording.write_bytes(wav(b"\x00\x10" * 8000))  # half a second of a quiet tone
    with LiveServer(create_media_app(api_key=OPENAI_KEY)) as media:
        console = platform_factory(
            models=MODELS, providers={"openai": {"max_retries": 0, "base_url": media.url + "/v1"}}
        )
        sign_in(page, console)
        pick(page, "openai/tts-1")
        set_openai_key(page)
        say(page, "Hello from the console")
        player = page.get_by_test_id("media").locator("audio")
        expect(player).to_have_count(1)
        assert player.evaluate("a => a.src.startsWith('blob:')")
        pick(page, "openai/whisper-1")
        expect(page.get_by_label("Audio file")).to_be_visible()
        page.get_by_label("Audio file").set_input_files(str(recording))
        page.get_by_test_id("send").click()
        expect(page.locator(".msg.user audio")).to_have_count(1)  # what was sent, playable
        expect(page.get_by_test_id("answer").last).not_to_be_empty()
        assert page.get_by_role("alert").count() == 0


def test_the_csv_export_quotes_what_a_spreadsheet_would_run(console: Platform, page: Page) -> None:
    sign_in(page, console)
    csv = page.evaluate(
        """async () => {
            const { toCsv } = await import("/console/js/keys.js");
            return toCsv([{time: "2026-12-07T10:00:00Z", requestId: "r1", keyId: "key_1",
                           model: '=HYPERLINK("http://x","y")', status: 200, inputTokens: -3, costUsd: 0.5}]);
        }"""
    )
    header, row = csv.splitlines()
    assert header == ",".join(RECORD_FIELDS)  # the same columns as the server's own CSV (`unimodel usage`)
    assert row == '2026-12-07T10:00:00Z,r1,key_1,"\'=HYPERLINK(""http://x"",""y"")",,,200,-3,,,0.5,,,'
