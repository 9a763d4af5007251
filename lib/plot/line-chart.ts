// SVG line charts with no dependencies: one or more panels stacked vertically, each with
// axes, "nice" ticks, a legend and one polyline per series. Non-finite points break a line.

export interface Series {
  name: string;
  points: Array<[number, number]>; // [x, y]
}

export interface Panel {
  title: string;
  xLabel: string;
  yLabel: string;
  series: Series[];
}

export interface ChartLayout {
  width: number; // px
  panelHeight: number; // px per panel
  margin: { left: number; right: number; top: number; bottom: number };
}

export const DEFAULT_LAYOUT: ChartLayout = {
  width: 720,
  panelHeight: 300,
  margin: { left: 72, right: 170, top: 36, bottom: 48 },
};

// Colour-blind-safe palette (Okabe-Ito).
const COLOURS = ['#0072B2', '#D55E00', '#009E73', '#CC79A7', '#E69F00', '#56B4E9', '#F0E442', '#000000'];

/** Escape text for XML element content and attribute values. */
export function escapeXml(text: string): string {
  return text.replace(/[<>&"']/g, (c) => ({ '<': '&lt;', '>': '&gt;', '&': '&amp;', '"': '&quot;', "'": '&apos;' })[c]!);
}

/** Tick positions covering [lo, hi] at a 1/2/5 x 10^k step, about `count` of them. */
export function niceTicks(lo: number, hi: number, count = 5): number[] {
  if (!(hi > lo)) return [lo];
  const raw = (hi - lo) / count;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * mag).find((s) => s >= raw) ?? 10 * mag;
  const ticks: number[] = [];
  for (let t = Math.ceil(lo / step - 1e-9) * step; t <= hi + step * 1e-9; t += step) ticks.push(Math.abs(t) < step * 1e-9 ? 0 : t);
  return ticks;
}

function formatTick(v: number): string {
  if (v === 0) return '0';
  const a = Math.abs(v);
  if (a >= 1e5 || a < 1e-3) return v.toExponential(1);
  return String(Number(v.toPrecision(4)));
}

/** Data range of a panel, padded so flat series still get a visible axis. */
function extent(values: number[]): [number, number] {
  let lo = Infinity;
  let hi = -Infinity;
  for (const v of values) {
    if (v < lo) lo = v;
    if (v > hi) hi = v;
  }
  if (lo === Infinity) return [0, 1];
  if (lo === hi) {
    const pad = lo === 0 ? 1 : Math.abs(lo) * 0.1;
    return [lo - pad, hi + pad];
  }
  return [lo, hi];
}

/** The plot rectangle of panel `index` (inside the margins), in SVG pixels. */
export function plotArea(index: number, layout: ChartLayout = DEFAULT_LAYOUT): { x0: number; y0: number; x1: number; y1: number } {
  const top = index * layout.panelHeight;
  return {
    x0: layout.margin.left,
    x1: layout.width - layout.margin.right,
    y0: top + layout.margin.top,
    y1: top + layout.panelHeight - layout.margin.bottom,
  };
}

function renderPanel(panel: Panel, index: number, layout: ChartLayout): string[] {
  const { x0, x1, y0, y1 } = plotArea(index, layout);
  const finite = panel.series.flatMap((s) => s.points.filter(([x, y]) => Number.isFinite(x) && Number.isFinite(y)));
  const [xLo, xHi] = extent(finite.map((p) => p[0]));
  const [yLo, yHi] = extent(finite.map((p) => p[1]));
  const xTicks = niceTicks(xLo, xHi);
  const yTicks = niceTicks(yLo, yHi);
  const sx = (x: number) => x0 + ((x - xLo) / (xHi - xLo)) * (x1 - x0);
  const sy = (y: number) => y1 - ((y - yLo) / (yHi - yLo)) * (y1 - y0);
  const f = (v: number) => v.toFixed(2);
  const out: string[] = [];
  out.push(`<g class="panel" id="panel-${index}">`);
  out.push(`<text x="${f((x0 + x1) / 2)}" y="${f(y0 - 14)}" text-anchor="middle" font-size="15" font-weight="bold">${escapeXml(panel.title)}</text>`);
  out.push(`<rect x="${f(x0)}" y="${f(y0)}" width="${f(x1 - x0)}" height="${f(y1 - y0)}" fill="none" stroke="#444"/>`);
  for (const t of xTicks) {
    if (t < xLo || t > xHi) continue;
    out.push(`<line x1="${f(sx(t))}" y1="${f(y0)}" x2="${f(sx(t))}" y2="${f(y1)}" stroke="#ddd"/>`);
    out.push(`<text x="${f(sx(t))}" y="${f(y1 + 16)}" text-anchor="middle" font-size="11">${escapeXml(formatTick(t))}</text>`);
  }
  for (const t of yTicks) {
    if (t < yLo || t > yHi) continue;
    out.push(`<line x1="${f(x0)}" y1="${f(sy(t))}" x2="${f(x1)}" y2="${f(sy(t))}" stroke="#ddd"/>`);
    out.push(`<text x="${f(x0 - 6)}" y="${f(sy(t) + 4)}" text-anchor="end" font-size="11">${escapeXml(formatTick(t))}</text>`);
  }
  out.push(`<text x="${f((x0 + x1) / 2)}" y="${f(y1 + 36)}" text-anchor="middle" font-size="12">${escapeXml(panel.xLabel)}</text>`);
  out.push(`<text transform="translate(${f(x0 - 54)} ${f((y0 + y1) / 2)}) rotate(-90)" text-anchor="middle" font-size="12">${escapeXml(panel.yLabel)}</text>`);
  panel.series.forEach((series, k) => {
    const colour = COLOURS[k % COLOURS.length];
    // split at non-finite points: a gap in the data is a gap in the line
    const runs: string[][] = [[]];
    for (const [x, y] of series.points) {
      if (Number.isFinite(x) && Number.isFinite(y)) runs[runs.length - 1].push(`${f(sx(x))},${f(sy(y))}`);
      else if (runs[runs.length - 1].length > 0) runs.push([]);
    }
    for (const run of runs) {
      if (run.length === 0) continue;
      const name = escapeXml(series.name);
      if (run.length === 1) {
        const [cx, cy] = run[0].split(',');
        out.push(`<circle class="series" data-series="${name}" cx="${cx}" cy="${cy}" r="3" fill="${colour}"/>`);
      } else {
        out.push(`<polyline class="series" data-series="${name}" points="${run.join(' ')}" fill="none" stroke="${colour}" stroke-width="2"/>`);
      }
    }
    const ly = y0 + 10 + k * 18;
    out.push(`<line x1="${f(x1 + 12)}" y1="${f(ly)}" x2="${f(x1 + 32)}" y2="${f(ly)}" stroke="${colour}" stroke-width="3"/>`);
    out.push(`<text x="${f(x1 + 38)}" y="${f(ly + 4)}" font-size="12">${escapeXml(series.name)}</text>`);
  });
  out.push('</g>');
  return out;
}

/** A standalone SVG document with the panels stacked top to bottom. */
export function lineChartSvg(panels: Panel[], layout: ChartLayout = DEFAULT_LAYOUT): string {
  const height = Math.max(1, panels.length) * layout.panelHeight;
  const lines = [
    '<?xml version="1.0" encoding="UTF-8"?>',
    `<svg xmlns="http://www.w3.org/2000/svg" width="${layout.width}" height="${height}" viewBox="0 0 ${layout.width} ${height}" font-family="sans-serif">`,
    `<rect x="0" y="0" width="${layout.width}" height="${height}" fill="#fff"/>`,
  ];
  panels.forEach((panel, i) => lines.push(...renderPanel(panel, i, layout)));
  lines.push('</svg>', '');
  return lines.join('\n');
}
