import { expect } from 'chai';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { lineChartSvg, niceTicks, plotArea, DEFAULT_LAYOUT, type Panel } from '../../lib/plot/line-chart.ts';
import { smooth, writeTrainingCurves } from '../../lib/plot/training-curves.ts';
import { uniformRng, normalRng } from '../helpers/rng.ts';
import { parseXml, findAll, type XmlElement } from './xml.ts';

const pointsOf = (el: XmlElement): Array<[number, number]> =>
  el.name === 'circle'
    ? [[Number(el.attrs.cx), Number(el.attrs.cy)]]
    : el.attrs.points.trim().split(/\s+/).map((p) => p.split(',').map(Number) as [number, number]);

describe('ship: SVG line charts', () => {
  it('the XML checker rejects malformed documents (so it can fail)', () => {
    expect(() => parseXml('<a><b></a></b>')).to.throw();
    expect(() => parseXml('<a x=1/>')).to.throw();
    expect(() => parseXml('<a>1 < 2</a>')).to.throw();
    expect(() => parseXml('<a>R&D</a>')).to.throw();
    expect(() => parseXml('<a/><b/>')).to.throw();
    expect(() => parseXml('<a x="1" x="2"/>')).to.throw();
    expect(parseXml('<a x="&lt;&amp;">t&gt;</a>').attrs.x).to.equal('<&');
  });

  it('writes well-formed XML whose points map data extremes onto the plot edges', () => {
    const u = uniformRng(7);
    const g = normalRng(8);
    const panels: Panel[] = [0, 1].map((p) => ({
      title: `panel ${p} <loss & "metrics">`,
      xLabel: 'step',
      yLabel: "y's",
      series: [0, 1, 2].map((s) => {
        let x = u() * 10 - 5;
        return { name: `s${s} <&>`, points: Array.from({ length: 20 + s * 7 }, () => [(x += 0.1 + u()), g() * 10 ** (p * 2) + 3] as [number, number]) };
      }),
    }));
    const svg = lineChartSvg(panels);
    const root = parseXml(svg);
    expect(root.name).to.equal('svg');
    expect(root.attrs.xmlns).to.equal('http://www.w3.org/2000/svg');
    const groups = findAll(root, 'g').filter((el) => el.attrs.class === 'panel');
    expect(groups).to.have.length(2);
    groups.forEach((group, p) => {
      const area = plotArea(p, DEFAULT_LAYOUT);
      const lines = findAll(group, 'polyline').filter((el) => el.attrs.class === 'series');
      expect(lines).to.have.length(3);
      expect(lines[0].attrs['data-series']).to.equal('s0 <&>');
      const all = panels[p].series.flatMap((s) => s.points);
      const [xMin, xMax] = [Math.min(...all.map((q) => q[0])), Math.max(...all.map((q) => q[0]))];
      const [yMin, yMax] = [Math.min(...all.map((q) => q[1])), Math.max(...all.map((q) => q[1]))];
      lines.forEach((line, s) => {
        const px = pointsOf(line);
        const data = panels[p].series[s].points;
        expect(px).to.have.length(data.length);
        px.forEach(([x, y], i) => {
          expect(x).to.be.within(area.x0 - 0.01, area.x1 + 0.01);
          expect(y).to.be.within(area.y0 - 0.01, area.y1 + 0.01);
          // linear maps: x grows right, y grows up (SVG y down); 2-decimal rounding allowed
          const ex = area.x0 + ((data[i][0] - xMin) / (xMax - xMin)) * (area.x1 - area.x0);
          const ey = area.y1 - ((data[i][1] - yMin) / (yMax - yMin)) * (area.y1 - area.y0);
          expect(x).to.be.closeTo(ex, 0.006);
          expect(y).to.be.closeTo(ey, 0.006);
        });
      });
      const xs = lines.flatMap((l) => pointsOf(l).map((q) => q[0]));
      const ys = lines.flatMap((l) => pointsOf(l).map((q) => q[1]));
      expect(Math.min(...xs)).to.be.closeTo(area.x0, 0.006);
      expect(Math.max(...xs)).to.be.closeTo(area.x1, 0.006);
      expect(Math.min(...ys)).to.be.closeTo(area.y0, 0.006); // the largest value at the top
      expect(Math.max(...ys)).to.be.closeTo(area.y1, 0.006);
    });
  });

  it('breaks a line at non-finite values and draws a lone point as a circle', () => {
    const svg = lineChartSvg([{ title: 't', xLabel: 'x', yLabel: 'y', series: [{ name: 'a', points: [[1, 2], [2, NaN], [3, 1], [4, 5], [5, Infinity], [6, 3]] }] }]);
    const root = parseXml(svg);
    const area = plotArea(0);
    expect(findAll(root, 'polyline').filter((e) => e.attrs.class === 'series')).to.have.length(1);
    const circles = findAll(root, 'circle').filter((e) => e.attrs.class === 'series');
    expect(circles).to.have.length(2);
    for (const c of circles) {
      expect(Number(c.attrs.cx)).to.be.within(area.x0, area.x1);
      expect(Number(c.attrs.cy)).to.be.within(area.y0, area.y1);
    }
    expect(svg).to.not.match(/NaN|Infinity/);
  });

  it('a flat series still gets a finite, in-range line', () => {
    const svg = lineChartSvg([{ title: 't', xLabel: 'x', yLabel: 'y', series: [{ name: 'a', points: [[0, 0.5], [1, 0.5], [2, 0.5]] }] }]);
    expect(svg).to.not.match(/NaN|Infinity/);
    const [line] = findAll(parseXml(svg), 'polyline');
    const area = plotArea(0);
    for (const [, y] of pointsOf(line)) expect(y).to.be.within(area.y0, area.y1);
  });

  it('niceTicks: steps of 1, 2 or 5 times a power of ten, inside the range', () => {
    const u = uniformRng(3);
    for (let trial = 0; trial < 200; trial++) {
      const lo = (u() - 0.5) * 10 ** (u() * 8 - 4);
      const hi = lo + 10 ** (u() * 8 - 4);
      const ticks = niceTicks(lo, hi);
      expect(ticks.length).to.be.within(2, 12);
      const step = ticks[1] - ticks[0];
      const mantissa = step / 10 ** Math.floor(Math.log10(step) + 1e-9);
      expect([1, 2, 5].some((m) => Math.abs(mantissa - m) < 1e-6), `step ${step}`).to.equal(true);
      for (const t of ticks) expect(t).to.be.within(lo - step * 1e-6, hi + step * 1e-6);
    }
  });

  it('smooth: bias-corrected exponential average (hand-computed)', () => {
    const s = smooth([1, 2, 3], 0.5);
    expect(s[0]).to.be.closeTo(1, 1e-12);
    expect(s[1]).to.be.closeTo(1.25 / 0.75, 1e-12);
    expect(s[2]).to.be.closeTo(2.125 / 0.875, 1e-12);
  });

  describe('writeTrainingCurves', () => {
    let dir: string;
    beforeEach(() => (dir = fs.mkdtempSync(path.join(os.tmpdir(), 'lmdr-plot-'))));
    afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

    it('plots loss and metric panels next to the logs', async () => {
      const g = normalRng(11);
      const train = Array.from({ length: 30 }, (_, i) => JSON.stringify({ step: i + 1, epoch: (i + 1) / 30, loss: 3 * Math.exp(-i / 10) + 0.1 * g(), lr: 1e-3, grad_norm: 1, tokens: 100, tokens_per_s: 1000, seconds: 0.1 }));
      fs.writeFileSync(path.join(dir, 'train_log.jsonl'), train.join('\n') + '\n');
      const evals = [0, 10, 20, 30].map((step) => JSON.stringify({ step, 'ndcg@10': 0.1 + step / 100, 'mrr@10': 0.05 + step / 120 }));
      fs.writeFileSync(path.join(dir, 'eval_log.jsonl'), evals.join('\n') + '\n');
      const out = await writeTrainingCurves(dir);
      expect(out).to.equal(path.join(dir, 'curves.svg'));
      const root = parseXml(fs.readFileSync(out!, 'utf8'));
      const series = findAll(root, 'polyline').filter((e) => e.attrs.class === 'series').map((e) => e.attrs['data-series']);
      expect(series).to.deep.equal(['loss', 'loss (smoothed)', 'ndcg@10', 'mrr@10']);
      expect(pointsOf(findAll(root, 'polyline').find((e) => e.attrs['data-series'] === 'loss')!)).to.have.length(30);
    });

    it('returns undefined with no logs, and names file and line of a malformed one', async () => {
      expect(await writeTrainingCurves(dir)).to.equal(undefined);
      fs.writeFileSync(path.join(dir, 'train_log.jsonl'), '{"step":1,"loss":2}\n{"step":2,"lo\n');
      const err = await writeTrainingCurves(dir).then(() => undefined, (e: Error) => e);
      expect(err?.message).to.match(/train_log\.jsonl:2/);
      expect(fs.existsSync(path.join(dir, 'curves.svg'))).to.equal(false);
    });
  });
});
