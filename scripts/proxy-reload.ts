import { ConfigError } from '../app/src/shared/errors';
import { EXIT, runEntryPoint } from '../app/src/shared/exit';
import { RELOAD_PLAN_ENV, reloadPlanSchema } from '../app/src/shared/control';
import { dockerProxy, dockerReplica } from '../control/access';
import { rebalance } from '../control/rebalance';
import { reloadAndAnnounce } from '../control/reload';

/**
 * The stack's reload step (a local-exec of the proxy's reload resource): checks nginx's new
 * config, reloads it, tells every replica which workers are current (the retired workers'
 * connections then get 1001 before nginx's deadline instead of 1006 at it), and, when the
 * topology enables it, rebalances. The plan comes from the synthesized stack (WS_RELOAD_PLAN).
 * Exit codes (shared/exit.ts): 0 done, 1 a step failed, 2 an invalid plan.
 */
async function main(): Promise<number> {
  let raw: unknown;
  try {
    raw = JSON.parse(process.env[RELOAD_PLAN_ENV] ?? '');
  } catch {
    throw new ConfigError('reload plan', [{ field: RELOAD_PLAN_ENV, rule: 'must hold the JSON plan the stack renders' }]);
  }
  const parsed = reloadPlanSchema.safeParse(raw);
  if (!parsed.success) throw ConfigError.fromZod('reload plan', parsed.error);
  const plan = parsed.data;
  const replicas = plan.replicas.map((name) => dockerReplica(name, plan.port));
  for (const container of plan.proxies) {
    const proxy = dockerProxy({ container, pidFile: plan.pidFile, configFile: plan.configFile });
    const result = await reloadAndAnnounce(proxy, replicas, plan.announce, { workerProcesses: plan.workerProcesses });
    const scheduled = Object.values(result.announced).reduce((a, r) => a + r.scheduled, 0);
    console.log(
      `${container} reloaded in ${result.seconds.toFixed(1)} s: workers ${result.workers.join(',')}; ` +
        `${scheduled} connection(s) of retired workers get 1001 from ${plan.announce.shedAfterMs / 1000} s, over ${plan.announce.windowMs / 1000} s`,
    );
  }
  if (plan.rebalance) {
    // Counted once the reload's wave has moved the retired workers' connections (with a margin).
    const quietWithinMs = plan.announce.shedAfterMs + plan.announce.windowMs + 10_000;
    const r = await rebalance(replicas, plan.rebalance, { quietWithinMs, log: (line) => console.log(line) });
    console.log(
      `rebalance ${r.even ? 'even' : 'NOT even'} after ${r.rounds.length} round(s): ${JSON.stringify(r.before)} → ${JSON.stringify(r.after)}`,
    );
  }
  return EXIT.ok;
}

// A failed step is reported by its message (it names the step and the replica), not a stack.
runEntryPoint(main, { expected: [Error] });
