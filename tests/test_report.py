"""The HTML report: content, the command line, and how it renders in a browser.

The browser test renders the page in headless Chromium: a screenshot must
exist and show more than a blank page, and the DOM Chromium built must hold
the key numbers. Chromium comes from the system (``apt-get install
chromium``; .ci/run installs it): under CI a missing browser is a failure,
elsewhere the test is skipped with that reason.
"""
import os
import re
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest

import reference_models as ref
import xxmpy as xm

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def brim_fit():
    m = ref.brim()
    fit = m.fit()
    fit.profile_ci(parameters=["student_theta_1_1", "teacher_alpha_1_1"], n_jobs=1)
    return fit


class _Collector(HTMLParser):
    def __init__(self):
        super().__init__()
        self.text, self.tags = [], []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)

    def handle_data(self, data):
        self.text.append(data)


def test_report_holds_fit_graph_matrices_estimates_and_profiles(brim_fit, tmp_path):
    path = tmp_path / "brim.html"
    html = brim_fit.report(path)
    assert path.read_text() == html
    page = _Collector()
    page.feed(html)
    text = " ".join(page.text)
    # fit statistics (OpenMx reference -2 log L 445.4331, ../shared/data)
    assert "445.43314" in text and "461.43314" in text    # deviance, AIC = deviance + 16
    # the level graph: one SVG box per level, an arrow teacher -> student, valid XML
    svgs = re.findall(r"<svg.*?</svg>", html, flags=re.S)
    graph = ET.fromstring(svgs[0])
    ns = "{http://www.w3.org/2000/svg}"
    assert len(graph.findall(f"{ns}rect")) == 2 and len(graph.findall(f"{ns}path")) == 1
    assert "teacher (25 units)" in svgs[0] and "student (75 units)" in svgs[0]
    # matrices: 4 of them, free cells with estimate and label, fixed lambda cells
    assert html.count("within <b>") == 3
    assert "between <b>teacher</b> &rarr; <b>student</b>" in html
    assert html.count('class="free"') == 2 * 4 + 2   # theta, psi (4 cells each), alpha
    assert html.count('class="fixed"') == 2 and html.count('class="zero"') == 2
    # estimates with SEs and the two CIs that were computed
    est = brim_fit.estimates.set_index("label")
    for label in ("student_theta_1_1", "teacher_alpha_1_1"):
        for col in ("estimate", "se", "lower", "upper"):
            assert f"{est.loc[label, col]:.6g}" in text, (label, col)
    # two profile pictures, each valid SVG with its trace and CI limits
    assert sum("pd-arrow" in s for s in svgs) == 1          # the path diagram
    profiles = [ET.fromstring(s) for s in svgs[1:] if "pd-arrow" not in s]
    assert len(profiles) == 2
    for svg in profiles:
        assert svg.find(f"{ns}polyline") is not None
        assert sum(1 for line in svg.findall(f"{ns}line")
                   if line.get("stroke") == "#c0392b") == 2


def test_report_of_an_unprofiled_lmer_fit_says_how_to_get_cis():
    import pandas as pd
    sleep = pd.read_csv(ROOT / "tests" / "data" / "sleepstudy.csv")
    fm = xm.lmer("Reaction ~ Days + (Days | Subject)", sleep)
    html = fm.report()
    assert "lmer(Reaction ~ Days + (Days | Subject), REML=True)" in html
    assert "REML criterion" in html and "1743.628272" in html   # lme4 REMLdev.R 1743.6282722
    assert "No CIs computed" in html and "(fixed)" in html


def test_command_line_runs_a_script_and_writes_the_report(tmp_path):
    out = tmp_path / "dyestuff.html"
    run = subprocess.run([sys.executable, "-m", "xxmpy", "report",
                          str(ROOT / "models" / "dyestuff" / "dyestuff.py"), "--out", str(out)],
                         capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert run.returncode == 0, run.stderr
    assert "wrote" in run.stdout and out.exists()
    html = out.read_text()
    assert "<h1>Dyestuff</h1>" in html and "327.327" in html   # lme4 -2LL 327.3271
    assert html.count("<polyline") == 3     # the script computed all three profile CIs


def test_command_line_reports_an_lmer_fit_with_its_formula(tmp_path):
    out = tmp_path / "lmer.html"
    run = subprocess.run([sys.executable, "-m", "xxmpy", "report",
                          str(ROOT / "models" / "dyestuff" / "dyestuff.py"), "--fit", "fit_lmer",
                          "--out", str(out)], capture_output=True, text=True, cwd=tmp_path,
                         timeout=300)
    assert run.returncode == 0, run.stderr
    html = out.read_text()
    assert "<h1>lmer(Yield ~ 1 + (1 | Batch), REML=False)</h1>" in html
    assert "327.327" in html       # lme4 ML -2LL 327.3271


def test_command_line_names_the_fits_when_asked_for_a_missing_one(tmp_path):
    run = subprocess.run([sys.executable, "-m", "xxmpy", "report",
                          str(ROOT / "models" / "penicillin" / "penicillin.py"), "--fit", "nope",
                          "--out", str(tmp_path / "x.html")],
                         capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert run.returncode != 0
    assert "no fit named 'nope'" in run.stderr and "fit_py" in run.stderr


def _chromium():
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    if os.environ.get("CI"):
        pytest.fail("headless Chromium is needed for the report test and .ci/run installs "
                    "it (apt-get install chromium); it is missing")
    pytest.skip("headless Chromium not installed (apt-get install chromium)")


def test_report_renders_in_headless_chromium(brim_fit, tmp_path):
    browser = _chromium()
    page = tmp_path / "brim.html"
    brim_fit.report(page)
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
             f"--user-data-dir={tmp_path / 'profile'}"]
    shot = tmp_path / "brim.png"
    subprocess.run([browser, *flags, "--window-size=1280,2200", f"--screenshot={shot}",
                    page.as_uri()], capture_output=True, timeout=120, check=True)
    import matplotlib.image
    pixels = matplotlib.image.imread(shot)
    assert pixels.shape[0] == 2200 and pixels.shape[1] == 1280
    assert np.unique(pixels.reshape(-1, pixels.shape[-1]), axis=0).shape[0] > 50
    dom = subprocess.run([browser, *flags, "--dump-dom", page.as_uri()], capture_output=True,
                         text=True, timeout=120, check=True).stdout
    assert "445.43314" in dom and "teacher (25 units)" in dom
    assert f"{brim_fit.estimates.set_index('label').loc['student_theta_1_1', 'upper']:.6g}" \
        in dom
