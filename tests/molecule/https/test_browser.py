"""A real browser uses the site over HTTPS: Debian's headless Chromium on
the controller, driven through the DevTools protocol (cdp.py), reaches the
host's published HTTPS port under the site's own name. It catches what curl
does not: the page's CSS loading over HTTPS, no mixed content, the CSRF
cookie (Secure) and the Origin/Referer checks on a POST, a multipart
upload."""

import hashlib
import json
import os
import secrets
from pathlib import Path

import pytest
import yaml
from cdp import Browser

NAME = "https.vps.test"
SITE = f"https://{NAME}"


def published_https_port():
    """The controller's port for the host's 443, from the scenario's own file."""
    scenario = Path(__file__).resolve().parents[3] / "molecule" / "https" / "molecule.yml"
    platform = yaml.safe_load(scenario.read_text())["platforms"][0]
    for mapping in platform["published_ports"]:
        address, port, inside = mapping.rsplit(":", 2)
        if inside == "443":
            return f"{address}:{port}"
    raise AssertionError("the https scenario publishes no port for 443")


@pytest.fixture(scope="module")
def page():
    # The site's name goes to the published port; the certificate comes
    # from Pebble's throwaway root, which this browser does not know: the
    # chain itself is checked against that root in test_https.py.
    args = [f"--host-resolver-rules=MAP {NAME} {published_https_port()}", "--ignore-certificate-errors"]
    with Browser(args, timeout=30) as browser:
        yield browser.page()


def test_the_home_page_renders_with_its_css(page):
    page.navigate(f"{SITE}/")
    assert page.evaluate("location.href") == f"{SITE}/"
    assert page.evaluate("document.querySelector('h1').textContent") == "Django sample app"
    # style.css sets body's max-width to 48rem: the stylesheet loaded and applied.
    assert page.evaluate("getComputedStyle(document.body).maxWidth") == "768px"
    resources = page.evaluate("performance.getEntriesByType('resource').map(e => e.name)")
    assert resources and all(url.startswith(f"{SITE}/") for url in resources), resources


def test_a_note_is_posted_through_the_csrf_protected_form(page):
    text = f"browser note {secrets.token_hex(6)}"
    page.navigate(f"{SITE}/notes/")
    page.submit(
        "(() => { const form = document.querySelector('form');"
        f" form.querySelector('[name=text]').value = {json.dumps(text)};"
        " form.requestSubmit(); })()"
    )
    assert page.evaluate("location.href") == f"{SITE}/notes/"
    notes = page.evaluate("[...document.querySelectorAll('#notes .note')].map(li => li.textContent)")
    assert any(note.endswith(text) for note in notes), notes


def test_a_file_is_uploaded(page, tmp_path):
    upload = tmp_path / "browser-upload.bin"
    upload.write_bytes(os.urandom(64 * 1024))
    page.navigate(f"{SITE}/upload/")
    document = page.send("DOM.getDocument")["root"]["nodeId"]
    field = page.send("DOM.querySelector", nodeId=document, selector="input[type=file]")["nodeId"]
    page.send("DOM.setFileInputFiles", files=[str(upload)], nodeId=field)
    page.submit("document.querySelector('form').requestSubmit()")
    assert page.evaluate("document.querySelector('h1').textContent") == "File stored"
    assert page.evaluate("document.getElementById('upload-sha256').textContent") == (
        hashlib.sha256(upload.read_bytes()).hexdigest()
    )
