import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { EXIT, runEntryPoint } from '../shared/exit';
import { runLoad, workersFor } from './coordinator';
import { renderHtml } from './html';
import { resolveOptions } from './options';
import { plannedSeconds, ProgressDisplay } from './progress';
import { buildReport, verdictOf } from './report';
import type { LoadReport } from './report-model';
import { formatSummary } from './summary';
import { evaluateThresholds } from './thresholds';
import type { FaultNotice } from './faults';
import { urlFor } from './wire';

/**
 * Exit codes (shared/exit.ts): 0 PASS, 1 FAIL (a threshold failed), 2 bad options, 3 interrupted,
 * 4 INCONCLUSIVE (the thresholds passed but the generator was the bottleneck).
 */
async function main(): Promise<number> {
  // Bad options are a ConfigError naming the flag or variable: exit 2.
  const options = resolveOptions(process.argv.slice(2), process.env);
  if (options.url.startsWith('wss:') && !options.ca && !options.insecure) {
    console.error('note: no --ca given; the server certificate is verified against the system trust store');
  }

  const abort = new AbortController();
  let interrupts = 0;
  const onSignal = () => {
    if (++interrupts > 1) process.exit(EXIT.interrupted);
    console.error('\nstopping: publications in flight arrive, then connections close and the report is written (again to exit at once)');
    abort.abort();
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);

  // prom-client (and the OpenTelemetry API it loads) only when asked for: 25 ms of every start otherwise.
  const metrics = options.metricsPort !== undefined ? new (await import('./metrics')).LoadMetrics() : undefined;
  if (metrics) console.error(`metrics on :${await metrics.listen(options.metricsPort!)}/metrics`);
  const workers = workersFor(options.profile);
  const progress = new ProgressDisplay(plannedSeconds(options.profile), options.quiet);
  const startedAt = new Date();
  const result = await runLoad({
    // Started by the local runner with an IPC channel: it tells us of each fault before it acts,
    // and waits for our answer, so the closes the fault causes are attributed to it.
    faultChannel: (inject) => {
      if (!process.send) return;
      process.channel?.unref();
      process.on('message', (m: FaultNotice) => {
        if (m?.type === 'fault')
          void inject(m.event).then(() => process.send?.({ type: 'fault-ack', id: m.event.id } satisfies FaultNotice));
      });
    },
    url: options.url,
    profile: options.profile,
    ca: options.ca,
    insecure: options.insecure,
    workers,
    signal: abort.signal,
    onProgress: (p) => {
      progress.update(p);
      metrics?.update(p);
    },
  });
  progress.stop();
  await metrics?.close();

  // The URL connected to: Centrifugo's protocol has its own path.
  const target = urlFor(options.url, options.profile.protocol);
  const partial = buildReport({ ...result, target, startedAt, profile: options.profile });
  const thresholds = evaluateThresholds(partial, options.thresholds);
  const passed = thresholds.every((t) => t.pass) && !result.interrupted;
  const report: LoadReport = {
    ...partial,
    thresholds,
    passed,
    verdict: verdictOf(passed, partial.generator, options.profile.acceptUntrustworthy),
  };

  console.log(formatSummary(report));
  for (const [file, text] of [
    [options.report, JSON.stringify(report, null, 2)],
    [options.html, renderHtml(report)],
  ] as const) {
    if (!file) continue;
    mkdirSync(dirname(file), { recursive: true });
    writeFileSync(file, text);
    console.log(`wrote ${file}`);
  }
  if (result.interrupted) return EXIT.interrupted;
  return report.verdict === 'PASS' ? EXIT.ok : report.verdict === 'FAIL' ? EXIT.failed : EXIT.inconclusive;
}

runEntryPoint(main);
