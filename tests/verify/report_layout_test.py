#!/usr/bin/env python3
"""Renders `temper compare --html` pages in headless Chromium and checks their layout.

report_layout_test.py REPORT_SAMPLE [--screenshots DIR] [--html FILE ...]

REPORT_SAMPLE (tests/verify/report_sample.cpp) writes pages for 3 and 12 candidates (or pass
--html to check given pages instead). Each page is loaded at 1400 and 800 px wide, inside
srcdoc iframes of a test-only harness page whose script measures what the browser laid out
(getBoundingClientRect) and writes the problems it finds into the DOM, which --dump-dom prints.
The page itself carries no script. Checked, per page and width:
  * no two texts of a chart overlap (point labels, the base's label, ticks, titles), no point
    label covers a marker, and every text lies inside its chart;
  * the page is not wider than the window (nothing sticks out to the right);
  * every table cell holds its content; a table wider than the page scrolls inside its own box,
    and at 1400 px the models table fits without scrolling.
With --screenshots DIR it also saves DIR/report-N-W.png for a person to look at.
Chromium absent: prints a skip message and exits 0 (scripts/setup.sh installs it for CI).
"""
import argparse
import html
import json
import os
import shutil
import subprocess
import sys
import tempfile

WIDTHS = (1400, 800)
CHROMIUM_FLAGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
                  '--disable-background-networking', '--disable-component-update', '--disable-sync',
                  '--hide-scrollbars']

# Runs in the harness after every frame has loaded; one result object per frame.
CHECK_SCRIPT = r"""
function box(e) { const r = e.getBoundingClientRect(); return {x0: r.left, y0: r.top, x1: r.right, y1: r.bottom}; }
function meets(a, b, m) { return a.x0 < b.x1 - m && b.x0 < a.x1 - m && a.y0 < b.y1 - m && b.y0 < a.y1 - m; }
function inside(a, b, m) { return a.x0 >= b.x0 - m && a.x1 <= b.x1 + m && a.y0 >= b.y0 - m && a.y1 <= b.y1 + m; }
function name(e) { return JSON.stringify(e.textContent.trim().slice(0, 40)); }
function check(frame) {
  const doc = frame.contentDocument, problems = [];
  const wide = frame.width >= 1400;
  doc.querySelectorAll('svg').forEach((svg, si) => {
    const sb = box(svg);
    const texts = [...svg.querySelectorAll('text')].filter(t => t.textContent.trim() !== '');
    const labels = texts.filter(t => ['label', 'ref-label'].includes(t.getAttribute('class')));
    const marks = [...svg.querySelectorAll('circle')];
    texts.forEach(t => { if (!inside(box(t), sb, 0.5)) problems.push(`chart ${si}: text ${name(t)} outside the chart`); });
    for (let i = 0; i < texts.length; ++i)
      for (let j = i + 1; j < texts.length; ++j)
        if (meets(box(texts[i]), box(texts[j]), 0.5))
          problems.push(`chart ${si}: texts ${name(texts[i])} and ${name(texts[j])} overlap`);
    labels.forEach(t => marks.forEach(c => {
      if (meets(box(t), box(c), 0.5)) problems.push(`chart ${si}: label ${name(t)} covers a marker`);
    }));
  });
  const root = doc.documentElement;
  if (root.scrollWidth > root.clientWidth + 0.5)
    problems.push(`page is ${root.scrollWidth} px wide in a ${root.clientWidth} px window`);
  doc.querySelectorAll('td, th').forEach(cell => {
    const range = doc.createRange();
    range.selectNodeContents(cell);
    const content = box(range);
    if (content.x1 - content.x0 > 0 && !inside(content, box(cell), 0.5))  // an empty cell has no box
      problems.push(`table cell ${name(cell)} overflows`);
  });
  doc.querySelectorAll('table').forEach((table, ti) => {
    const scroller = table.closest('.scroll');
    if (scroller) {
      if (wide && table.classList.contains('models') && scroller.scrollWidth > scroller.clientWidth + 0.5)
        problems.push(`models table needs ${scroller.scrollWidth} px, has ${scroller.clientWidth}`);
    } else if (box(table).x1 > root.clientWidth + 0.5) {
      problems.push(`table ${ti} reaches ${Math.round(box(table).x1)} px in a ${root.clientWidth} px window`);
    }
  });
  return {page: frame.dataset.page, width: frame.width, charts: doc.querySelectorAll('svg').length,
          labels: doc.querySelectorAll('svg g.point').length, problems};
}
window.addEventListener('load', () => {
  const out = [...document.querySelectorAll('iframe')].map(check);
  const pre = document.createElement('pre');
  pre.id = 'layout-result';
  pre.textContent = JSON.stringify(out);
  document.body.appendChild(pre);
});
"""


def chromium_run(chromium, args, profile_parent):
    profile = tempfile.mkdtemp(dir=profile_parent)  # a new empty profile per run
    try:
        return subprocess.run([chromium, *CHROMIUM_FLAGS, f'--user-data-dir={profile}', *args],
                              capture_output=True, text=True, timeout=120)
    finally:
        shutil.rmtree(profile, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('report_sample', nargs='?')
    ap.add_argument('--html', nargs='*', default=[])
    ap.add_argument('--screenshots')
    args = ap.parse_args()
    chromium = shutil.which('chromium') or shutil.which('chromium-browser')
    if not chromium:
        print('SKIP: chromium not found (scripts/setup.sh installs it); the report layout was not checked')
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        pages = {os.path.basename(p): p for p in args.html}
        if args.report_sample:
            for n in (3, 12):
                path = os.path.join(tmp, f'report-{n}.html')
                subprocess.run([args.report_sample, str(n), path], check=True)
                pages[f'report-{n}'] = path
        frames = []
        for page, path in pages.items():
            with open(path, encoding='utf-8') as f:
                doc = f.read()
            if '<script' in doc:
                raise SystemExit(f'{path}: the report must not need scripts')
            for w in WIDTHS:
                frames.append(f'<iframe data-page="{html.escape(page)}" width="{w}" height="8000" '
                              f'style="border:0;display:block" srcdoc="{html.escape(doc)}"></iframe>')
        harness = os.path.join(tmp, 'harness.html')
        with open(harness, 'w', encoding='utf-8') as f:
            f.write('<!DOCTYPE html><html><body style="margin:0">' + ''.join(frames) +
                    f'<script>{CHECK_SCRIPT}</script></body></html>')
        r = chromium_run(chromium, ['--window-size=1500,1000', '--dump-dom', 'file://' + harness], tmp)
        start = r.stdout.find('<pre id="layout-result">')
        if start < 0:
            raise SystemExit(f'chromium printed no layout result (exit {r.returncode}):\n{r.stderr[-2000:]}')
        result = json.loads(html.unescape(r.stdout[start + len('<pre id="layout-result">'):r.stdout.index('</pre>', start)]))
        failed = False
        for frame in result:
            print(f"{frame['page']} at {frame['width']} px: {frame['charts']} charts, {frame['labels']} points, "
                  f"{len(frame['problems'])} problems")
            for p in frame['problems']:
                print('  ' + p)
            failed |= bool(frame['problems']) or frame['charts'] < 2
        if args.screenshots:
            os.makedirs(args.screenshots, exist_ok=True)
            for page, path in pages.items():
                for w in WIDTHS:
                    png = os.path.abspath(os.path.join(args.screenshots, f'{page}-{w}.png'))
                    chromium_run(chromium, [f'--window-size={w},2400', f'--screenshot={png}', 'file://' + os.path.abspath(path)], tmp)
                    print('wrote', png)
        return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(main())
