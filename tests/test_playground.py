"""The web playground in a real headless Chromium (Debian's), driven by Playwright: upload a wav,
watch both answers stream in with their timing bars, on a desktop and on a phone-sized screen."""

import os
import shutil

import pytest

pytestmark = pytest.mark.vllm

SHOTS = os.environ.get("AURA_SCREENSHOTS", os.path.join(os.path.dirname(__file__), "..", "artifacts", "screenshots"))
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage"]


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    assert os.path.exists(CHROMIUM), "Debian's chromium is missing: `make setup` installs it"
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()


def ask(page, server, wav_path: str, prompt: str = "") -> None:
    page.goto(server.url + "/")
    page.set_input_files("#file", wav_path)
    if prompt:
        page.fill("#prompt", prompt)
    page.fill("#max-tokens", "12")
    page.click("#send")


def test_upload_flow_shows_both_answers_and_timings(browser, server, speech_corpus):
    wav = os.path.join(os.path.dirname(speech_corpus), "clips", "000001.wav")
    page = browser.new_page(viewport={"width": 1200, "height": 900})
    ask(page, server, wav, "What did I ask for?")
    for mode, stages in (("aura", ["decode", "features", "embed", "ttft", "total"]), ("cascade", ["decode", "asr", "ttft", "total"])):
        page.wait_for_selector(f"#path-{mode} .timings .bar[data-stage=total]", timeout=60_000)
        shown = page.eval_on_selector_all(f"#path-{mode} .timings .bar", "bars => bars.map(b => b.dataset.stage)")
        assert shown == stages, (mode, shown)
        widths = page.eval_on_selector_all(f"#path-{mode} .timings .fill", "fills => fills.map(f => f.getBoundingClientRect().width)")
        assert all(w > 0 for w in widths) and widths[-1] == max(widths), (mode, widths)  # bars drawn, total the longest
        assert page.inner_text(f"#path-{mode} [data-role=answer]").strip(), f"{mode}: no answer text"
        assert page.is_hidden(f"#path-{mode} [data-role=error]")
    assert page.inner_text("#path-cascade [data-role=transcript]").startswith("Heard:")
    assert "Done in" in page.inner_text("#status")
    os.makedirs(SHOTS, exist_ok=True)
    page.screenshot(path=os.path.join(SHOTS, "playground.png"), full_page=True)

    phone = browser.new_page(viewport={"width": 390, "height": 844}, is_mobile=True)
    ask(phone, server, wav)
    phone.wait_for_selector("#path-cascade .timings .bar[data-stage=total]", timeout=60_000)
    assert phone.evaluate("document.documentElement.scrollWidth <= window.innerWidth"), "the page scrolls sideways on a phone"
    phone.screenshot(path=os.path.join(SHOTS, "playground-phone.png"), full_page=True)


def test_api_errors_are_shown(browser, server, tmp_path):
    bad = tmp_path / "notes.wav"
    bad.write_bytes(b"this is not audio" * 20)
    page = browser.new_page()
    ask(page, server, str(bad))
    for mode in ("aura", "cascade"):
        page.wait_for_selector(f"#path-{mode} [data-role=error]:not([hidden])", timeout=30_000)
        assert page.inner_text(f"#path-{mode} [data-role=error]").startswith("400: ")


def test_controls_are_labelled(browser, server):
    page = browser.new_page()
    page.goto(server.url + "/")
    unlabelled = page.evaluate("""() => [...document.querySelectorAll('input')].filter(i =>
        !(i.labels && i.labels.length) && !i.getAttribute('aria-label')).map(i => i.id)""")
    assert unlabelled == []
    assert page.get_attribute("#record", "aria-pressed") == "false"
