// A tiny SVG time-series: one polyline over the last minutes, scaled to its own maximum,
// with the latest value as text. No library: the console works offline and under a CSP
// without 'unsafe-inline'.

const NS = 'http://www.w3.org/2000/svg';
const W = 240;
const H = 48;

function svg(tag, attrs) {
  const el = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
  return el;
}

// `points` is a list of [time_ms, value]; `windowMs` the span shown (the right edge is the
// newest point). Returns a figure with the chart and its caption; the SVG has role=img and
// a label naming the series and the latest value, for screen readers.
export function timeSeries(title, points, { windowMs = 5 * 60 * 1000, format = (v) => String(v) } = {}) {
  const last = points.length ? points[points.length - 1] : null;
  const latest = last ? format(last[1]) : '—';
  const end = last ? last[0] : Date.now();
  // Until there are minutes of samples, the chart spans what there is (at least 30 s) so
  // the first samples draw a line rather than a sliver at the right edge.
  const first = points.length ? points[0][0] : end;
  const span = Math.min(windowMs, Math.max(30000, end - first));
  const start = end - span;
  const shown = points.filter(([t, v]) => t >= start && Number.isFinite(v));
  const max = Math.max(1e-9, ...shown.map(([, v]) => v));
  const root = svg('svg', {
    viewBox: `0 0 ${W} ${H}`,
    preserveAspectRatio: 'none',
    role: 'img',
    'aria-label': `${title}: ${latest} now, peak ${format(shown.length ? max : 0)} over the last ${span >= 90000 ? `${Math.round(span / 60000)} minutes` : `${Math.round(span / 1000)} seconds`}`,
    class: 'chart',
  });
  root.append(svg('line', { x1: 0, y1: H - 1, x2: W, y2: H - 1, class: 'chart-axis' }));
  if (shown.length > 1) {
    const xy = shown.map(([t, v]) => `${(((t - start) / span) * W).toFixed(1)},${(H - 2 - (v / max) * (H - 6)).toFixed(1)}`);
    root.append(svg('polygon', { points: `${xy[0].split(',')[0]},${H - 1} ${xy.join(' ')} ${xy[xy.length - 1].split(',')[0]},${H - 1}`, class: 'chart-area' }));
    root.append(svg('polyline', { points: xy.join(' '), class: 'chart-line' }));
  }
  const fig = document.createElement('figure');
  fig.className = 'chart-box';
  const cap = document.createElement('figcaption');
  const name = document.createElement('span');
  name.textContent = title;
  const val = document.createElement('strong');
  val.textContent = latest;
  cap.append(name, val);
  fig.append(cap, root);
  return fig;
}
