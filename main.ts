import { App } from 'cdktf';
import { defineTopology } from './app/src/topology';
import { EXIT, runEntryPoint } from './app/src/shared/exit';
import { WsNotificationsStack } from './stacks/ws-notifications-stack';

/**
 * The deployment, in code. Change `replicas` here (or set REPLICAS=5 for a quick experiment)
 * and deploy again: the fleet and the proxy's upstreams follow, the proxy reloads gracefully.
 */
function main(): number {
  const topology = defineTopology(
    {
      replicas: 3,
      proxy: { balancing: { strategy: 'least_conn' } },
    },
    process.env,
  );

  const app = new App();
  new WsNotificationsStack(app, topology.name, {
    topology,
    root: __dirname,
    loadRunId: process.env.LOAD_RUN_ID,
    loadUser: typeof process.getuid === 'function' ? `${process.getuid()}:${process.getgid?.()}` : undefined,
  });
  app.synth();
  return EXIT.ok;
}

runEntryPoint(main);
