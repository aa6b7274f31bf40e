#!/usr/bin/env python3
"""Parses a `temper compare --html` report twice: strictly as XML (well-formedness) and with
html.parser (what browsers-style parsing sees). Prints JSON:
  svgs: per chart, its points (label, cx, cy), one per candidate;
  refs: per chart, the reference line of the base ({y, label}) or null;
  hashes: {path: SHA-256} from the provenance table;
  circles / tables / scripts: tag counts from html.parser."""
import html.parser
import json
import sys
import xml.etree.ElementTree as ET

S = '{http://www.w3.org/2000/svg}'
H = '{http://www.w3.org/1999/xhtml}'
root = ET.parse(sys.argv[1]).getroot()  # raises on anything not well-formed
svgs, refs = [], []
for svg in root.iter(S + 'svg'):
    points = []
    for g in svg.iter(S + 'g'):
        if g.get('class') == 'point':
            label = g.find(S + 'text')
            circle = g.find(S + 'circle')
            points.append({'label': ''.join(label.itertext()), 'cx': float(circle.get('cx')), 'cy': float(circle.get('cy'))})
    svgs.append(points)
    line = next((e for e in svg.iter(S + 'line') if e.get('class') == 'ref'), None)
    label = next((e for e in svg.iter(S + 'text') if e.get('class') == 'ref-label'), None)
    refs.append(None if line is None else {'y': float(line.get('y1')), 'label': ''.join(label.itertext())})
hashes = {}
for table in root.iter(H + 'table'):
    if table.get('class') == 'files':
        for tr in table.iter(H + 'tr'):
            cells = [''.join(td.itertext()) for td in tr.findall(H + 'td')]
            if cells:
                hashes[cells[1]] = cells[4]


class Counter(html.parser.HTMLParser):
    def __init__(self):
        super().__init__()
        self.counts = {}

    def handle_starttag(self, tag, attrs):
        self.counts[tag] = self.counts.get(tag, 0) + 1
        for k, v in attrs:  # self-contained: nothing loaded from elsewhere
            if k in ('src', 'href') and v and not v.startswith('#'):
                raise SystemExit(f'external reference {k}={v}')


c = Counter()
c.feed(open(sys.argv[1], encoding='utf-8').read())
c.close()
print(json.dumps({'svgs': svgs, 'refs': refs, 'hashes': hashes, 'circles': c.counts.get('circle', 0),
                  'tables': c.counts.get('table', 0), 'scripts': c.counts.get('script', 0)}))
