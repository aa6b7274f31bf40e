#!/usr/bin/env python3
"""Parses a `temper compare --html` report twice: strictly as XML (well-formedness) and with
html.parser (what browsers-style parsing sees). Prints JSON: per <svg>, the labels of its
point groups, plus circle/table counts from html.parser."""
import html.parser
import json
import sys
import xml.etree.ElementTree as ET

NS = {'s': 'http://www.w3.org/2000/svg', 'h': 'http://www.w3.org/1999/xhtml'}
root = ET.parse(sys.argv[1]).getroot()  # raises on anything not well-formed
svgs = []
for svg in root.iter('{http://www.w3.org/2000/svg}svg'):
    points = []
    for g in svg.iter('{http://www.w3.org/2000/svg}g'):
        if g.get('class') == 'point':
            label = g.find('s:text', NS)
            circle = g.find('s:circle', NS)
            points.append({'label': ''.join(label.itertext()), 'cx': float(circle.get('cx')), 'cy': float(circle.get('cy'))})
    svgs.append(points)


class Counter(html.parser.HTMLParser):
    def __init__(self):
        super().__init__()
        self.counts = {}
        self.scripts = 0

    def handle_starttag(self, tag, attrs):
        self.counts[tag] = self.counts.get(tag, 0) + 1
        for k, v in attrs:  # self-contained: nothing loaded from elsewhere
            if k in ('src', 'href') and v and not v.startswith('#'):
                raise SystemExit(f'external reference {k}={v}')


c = Counter()
c.feed(open(sys.argv[1], encoding='utf-8').read())
c.close()
print(json.dumps({'svgs': svgs, 'circles': c.counts.get('circle', 0), 'tables': c.counts.get('table', 0),
                  'scripts': c.counts.get('script', 0)}))
