// bench/results/latest.svg from latest.json (no charting library): one section per kind of
// request, a bar per server (batches in rows/s), each labelled with its rate, p99 and server CPU,
// and on the service's bars a tick at each target (green when met, red when not); below, every
// target, the memory a model costs, the machine, the date and the load.

interface Median {
  requestsPerSecond: number;
  rowsPerSecond: number;
  p99Ms: number;
  serverCpuMicrosPerRequest: number;
  serverCpuMicrosPerRow: number;
  errors: number;
}

export interface BenchOutput {
  date: string;
  machine: { cores: number; cpu: string; node: string; loadGenerator: string; loadAverageAtStart: number[] };
  settings: { durationSeconds: number; rounds: number; connections: number; wrkThreads: number; smoke: boolean };
  scenarios: Array<{ id: string; name: string; rowsPerRequest: number; median: Median | undefined }>;
  targets: Array<{ id: string; what: string; value: number; target: number; kind: 'min' | 'max' | 'below'; met: boolean }>;
  memory?: { models: Record<string, { perThreadMiB: number; withTwoThreadsMiB: number; fileBytes: number }>; threadWithoutModelsMiB: number } | undefined;
  soak?: { seconds: number; settledMiB: number; endMiB: number; peakMiB: number } | undefined;
}

const SECTIONS: Array<{ title: string; ids: string[] }> = [
  {
    title: 'Cached prediction, iris-logreg (requests/s)',
    ids: ['bare', 'memory.cached', 'memory.cached.info', 'fastapi.memory.cached', 'redis.cached', 'fastapi.redis.cached'],
  },
  { title: 'Uncached prediction, iris-logreg (requests/s)', ids: ['memory.uncached', 'fastapi.memory.uncached', 'redis.uncached', 'fastapi.redis.uncached'] },
  { title: 'Open Inference Protocol (V2) infer, 1 row of iris-logreg (requests/s)', ids: ['v2.infer', 'mlserver.infer'] },
  {
    title: 'Batches of 64 rows (rows/s)',
    ids: [
      'memory.batch64',
      'redis.batch64',
      'fastapi.memory.batch64',
      'fastapi.redis.batch64',
      'v2.batch64',
      'mlserver.batch64',
      'memory.batch64.digits',
      'fastapi.memory.batch64.digits',
    ],
  },
  {
    title: 'A heavier model: digits-forest-large, 64 features, uncached (requests/s)',
    ids: ['memory.uncached.digits', 'fastapi.memory.uncached.digits', 'v2.infer.digits', 'mlserver.infer.digits'],
  },
];

/** Target ticks on the service's bars: [bar, target id, label, factor, reference scenario]. */
const TICKS: Array<[string, string, string, number, string]> = [
  ['memory.cached', 'cached.ratio', '0.8× bare', 0.8, 'bare'],
  ['memory.cached', 'fastapi.memory.cached', '3× FastAPI', 3, 'fastapi.memory.cached'],
  ['redis.cached', 'redis.cached.ratio', '0.6× bare', 0.6, 'bare'],
  ['redis.cached', 'fastapi.redis.cached', '3× FastAPI', 3, 'fastapi.redis.cached'],
  ['memory.uncached', 'uncached.ratio', '0.6× bare', 0.6, 'bare'],
  ['memory.uncached', 'fastapi.memory.uncached', '3× FastAPI', 3, 'fastapi.memory.uncached'],
  ['redis.uncached', 'redis.uncached.ratio', '0.45× bare', 0.45, 'bare'],
  ['redis.uncached', 'fastapi.redis.uncached', '3× FastAPI', 3, 'fastapi.redis.uncached'],
  ['v2.infer', 'v2.ratio', '0.7× bare', 0.7, 'bare'],
  ['v2.infer', 'mlserver.infer', '10× MLServer', 10, 'mlserver.infer'],
  ['memory.batch64', 'batch.fastapi4', '4× FastAPI', 4, 'fastapi.memory.batch64'],
  ['redis.batch64', 'fastapi.redis.batch64', '3× FastAPI', 3, 'fastapi.redis.batch64'],
  ['v2.batch64', 'mlserver.batch64', '10× MLServer', 10, 'mlserver.batch64'],
];

const colour = (id: string) =>
  id === 'bare' ? '#9aa5b1' : id.startsWith('fastapi') ? '#f59e0b' : id.startsWith('mlserver') ? '#8b5cf6' : id.endsWith('.info') ? '#93c5fd' : '#2563eb';

const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
const num = (n: number, digits = 0) => n.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits });

export function benchChartSvg(out: BenchOutput): string {
  const width = 1200;
  const labelWidth = 330;
  const plot = 500;
  const barHeight = 22;
  const gap = 16;
  const byId = new Map(out.scenarios.filter((s) => s.median).map((s) => [s.id, s]));
  const targetById = new Map(out.targets.map((t) => [t.id, t]));
  const parts: string[] = [];
  let y = 30;
  const text = (x: number, yy: number, s: string, attrs = '') => parts.push(`<text x="${x}" y="${yy}"${attrs ? ` ${attrs}` : ''}>${esc(s)}</text>`);

  text(20, y, 'make bench: the service beside a bare Fastify route, the FastAPI stack and MLServer, measured in one run', 'font-size="16" font-weight="bold"');
  y += 20;
  const m = out.machine;
  const s = out.settings;
  text(
    20,
    y,
    `${out.date.slice(0, 16).replace('T', ' ')} UTC · ${m.cores} cores (${m.cpu}), shared · load average at start ${m.loadAverageAtStart.join(' ')} · Node ${m.node}`,
    'fill="#444"',
  );
  y += 17;
  text(
    20,
    y,
    `${m.loadGenerator} (${s.wrkThreads} threads, ${s.connections} connections, loopback) · ${s.durationSeconds} s per run, medians of ${s.rounds} interleaved round${s.rounds > 1 ? 's' : ''}${s.smoke ? ' · SMOKE RUN (figures mean nothing)' : ''}`,
    'fill="#444"',
  );
  y += 17;
  text(
    20,
    y,
    'Ticks on the service’s bars are targets: green met, red missed. Labels: rate · p99 latency · server CPU (all processes and threads) per request or row.',
    'fill="#444"',
  );
  y += 14;

  for (const section of SECTIONS) {
    const bars = section.ids.map((id) => byId.get(id)).filter((b) => b !== undefined);
    if (bars.length === 0) continue;
    const ticks = TICKS.filter(([bar, , , , ref]) => byId.has(bar) && byId.has(ref)).map(([bar, id, label, factor, ref]) => ({
      bar,
      label,
      value: factor * byId.get(ref)!.median!.rowsPerSecond,
      met: targetById.get(id)?.met,
    }));
    const max = Math.max(1, ...bars.map((b) => b.median!.rowsPerSecond), ...ticks.filter((t) => section.ids.includes(t.bar)).map((t) => t.value));
    y += 26;
    text(20, y, section.title, 'font-size="14" font-weight="bold"');
    y += 22;
    for (const b of bars) {
      const med = b.median!;
      const w = Math.max(1, (med.rowsPerSecond / max) * plot);
      const batch = b.rowsPerRequest > 1;
      parts.push(`<text x="${labelWidth - 8}" y="${y + 15}" text-anchor="end">${esc(b.name)}</text>`);
      parts.push(`<rect x="${labelWidth}" y="${y}" width="${w.toFixed(1)}" height="${barHeight}" fill="${colour(b.id)}"/>`);
      const label = `${num(med.rowsPerSecond)} ${batch ? 'rows/s' : 'req/s'} · p99 ${num(med.p99Ms, 1)} ms · ${batch ? `${num(med.serverCpuMicrosPerRow, 2)} µs/row` : `${num(med.serverCpuMicrosPerRequest)} µs/req`}${med.errors ? ` · ${med.errors} errors` : ''}`;
      text(labelWidth + plot + 12, y + 15, label);
      for (const t of ticks.filter((t) => t.bar === b.id)) {
        const x = labelWidth + (t.value / max) * plot;
        const c = t.met === undefined ? '#666' : t.met ? '#16a34a' : '#dc2626';
        parts.push(
          `<line x1="${x.toFixed(1)}" y1="${y - 12}" x2="${x.toFixed(1)}" y2="${y + barHeight + 2}" stroke="${c}" stroke-width="2" stroke-dasharray="4 2"/>`,
        );
        parts.push(`<text x="${(x - 3).toFixed(1)}" y="${y - 3}" font-size="10" text-anchor="end" fill="${c}">${esc(t.label)}</text>`);
      }
      y += barHeight + gap;
    }
  }

  y += 22;
  text(20, y, 'Targets', 'font-size="14" font-weight="bold"');
  for (const t of out.targets) {
    y += 17;
    const op = t.kind === 'min' ? '≥' : t.kind === 'max' ? '≤' : '<';
    text(20, y, `${t.met ? '✓ met' : '✗ MISSED'}`, `fill="${t.met ? '#16a34a' : '#dc2626'}" font-weight="bold"`);
    text(100, y, `${t.what}: ${num(t.value, 3)} (target ${op} ${t.target})`);
  }
  if (out.memory) {
    y += 26;
    text(20, y, 'Memory a loaded model costs (RSS, idle after one prediction)', 'font-size="14" font-weight="bold"');
    for (const [name, mm] of Object.entries(out.memory.models)) {
      y += 17;
      text(
        20,
        y,
        `${name} (${num(mm.fileBytes / 1024, 0)} KiB file): ${num(mm.perThreadMiB, 0)} MiB per inference thread; ${num(mm.withTwoThreadsMiB, 0)} MiB in all with 2 threads`,
      );
    }
    y += 17;
    text(20, y, `an inference thread without models: ${num(out.memory.threadWithoutModelsMiB, 0)} MiB`);
  }
  if (out.soak) {
    y += 17;
    text(
      20,
      y,
      `soak: ${out.soak.seconds} s of uncached predictions, RSS ${out.soak.settledMiB} → ${out.soak.endMiB} MiB after its first tenth (peak ${out.soak.peakMiB} MiB)`,
    );
  }
  const height = y + 24;
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" font-family="sans-serif" font-size="12">
<rect width="100%" height="100%" fill="white"/>
${parts.join('\n')}
</svg>
`;
}
