import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { defineTopology, withoutAuth } from '../app/src/topology';
import { serverSpec } from '../components/server';
import { builtApp } from '../local/build';
import { freePort, startComponent, stop } from '../local/processes';
import { ROOT } from '../local/run';
import { usageOf } from './proc';
import { median } from './stats';

/**
 * A local replica from source (tsx compiling TypeScript at run time, what `npm run local` ran
 * before) against the compiled app (local/build.ts, what it runs now and the image runs): the
 * time from spawn until /healthz answers, and the resident memory once idle. Both modes
 * alternate in one run, so the machine's state weighs on both alike. Writes
 * docs/benchmarks/local-replica.md.
 */
const ROUNDS = Number(process.env.ROUNDS ?? 5);
const IDLE_MS = 3_000;

type Mode = 'source' | 'built';
interface Sample {
  startMs: number;
  rssMb: number;
}

async function sample(mode: Mode, appDir: string, keyFile: string): Promise<Sample> {
  const port = await freePort();
  const topology = defineTopology(withoutAuth({ broker: { enabled: false } }));
  const spec = serverSpec(topology, { replicaId: 'ws-server-0', controlKeyFile: keyFile, from: mode, port, host: '127.0.0.1' });
  // The spec's own check, as the containers run it.
  if (!spec.health || !('url' in spec.health)) throw new Error("a replica's spec has no HTTP health check");
  const health = spec.health.url;
  const started = performance.now();
  const p = startComponent(`replica-${mode}`, spec, { cwd: mode === 'built' ? appDir : ROOT });
  try {
    for (;;) {
      const ok = await fetch(health).then(
        (r) => r.ok,
        () => false,
      );
      if (ok) break;
      if (performance.now() - started > 60_000) throw new Error(`${mode}: no answer from ${health} within 60 s:\n${p.output()}`);
      await new Promise((r) => setTimeout(r, 20));
    }
    const startMs = performance.now() - started;
    await new Promise((r) => setTimeout(r, IDLE_MS));
    const usage = usageOf(p.child.pid!);
    if (!usage) throw new Error(`${mode}: the replica exited:\n${p.output()}`);
    return { startMs, rssMb: usage.rssBytes / 2 ** 20 };
  } finally {
    await stop(p, 'SIGKILL', 5_000);
  }
}

async function main(): Promise<void> {
  const built = performance.now();
  const appDir = await builtApp();
  const buildMs = performance.now() - built;
  const dir = join(tmpdir(), `ws-replica-bench-${process.pid}`);
  mkdirSync(dir, { recursive: true });
  const keyFile = join(dir, 'control.key');
  writeFileSync(keyFile, 'bench-control-key-0123456789abcdef');
  const samples: Record<Mode, Sample[]> = { source: [], built: [] };
  try {
    for (let i = 0; i < ROUNDS; i++) {
      for (const mode of ['source', 'built'] as const) {
        const s = await sample(mode, appDir, keyFile);
        samples[mode].push(s);
        console.log(`round ${i + 1} ${mode}: started in ${s.startMs.toFixed(0)} ms, ${s.rssMb.toFixed(1)} MB resident`);
      }
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  const out = join(__dirname, '..', 'docs', 'benchmarks', 'local-replica.md');
  writeFileSync(out, render(samples, buildMs));
  console.log(`wrote ${out}`);
}

function render(samples: Record<Mode, Sample[]>, buildMs: number): string {
  const row = (mode: Mode, label: string) => {
    const s = samples[mode];
    const start = s.map((x) => x.startMs);
    const rss = s.map((x) => x.rssMb);
    return `| ${label} | ${median(start).toFixed(0)} (${Math.min(...start).toFixed(0)}–${Math.max(...start).toFixed(0)}) | ${median(rss).toFixed(1)} (${Math.min(...rss).toFixed(1)}–${Math.max(...rss).toFixed(1)}) |`;
  };
  const ratio = (f: (x: Sample) => number) => median(samples.source.map(f)) / median(samples.built.map(f));
  return `# A local replica: compiled against tsx

Produced by \`npm run bench:local-replica\` on ${new Date().toISOString().slice(0, 10)} (linux, ${cpus().length} cores, Node ${process.version}).
One replica (no broker) started ${ROUNDS} times in each mode, alternating: the time from spawn until
/healthz answers, and its resident memory after ${IDLE_MS / 1000} s idle. Median (range).

| mode | start, ms | resident, MB |
| --- | ---: | ---: |
${row('source', 'before: TypeScript through tsx (`node --import tsx app/src/server/main.ts`)')}
${row('built', 'now: compiled (`node dist/server/main.js` in app/.build/<hash>/)')}

Compiled, a replica starts ${ratio((x) => x.startMs).toFixed(1)}× sooner and holds ${((1 - 1 / ratio((x) => x.rssMb)) * 100).toFixed(0)}% less memory idle
(what a replica run from source also loads: tsx and its compiler). The build (tsc
without type checking, local/build.ts) ${buildMs > 500 ? `took ${(buildMs / 1000).toFixed(1)} s in this run` : 'was already cached in this run'}; it is kept by
the sources' hash, so only the first run after a change pays it (about 4 s here).
`;
}

void main().catch((error: Error) => {
  console.error(error.message);
  process.exit(1);
});
