import { App } from 'cdktf';
import { deploymentTopology } from './deployment';
import { EXIT, runEntryPoint } from './app/src/shared/exit';
import { WsNotificationsStack } from './stacks/ws-notifications-stack';
import { WsNotificationsSwarmStack } from './stacks/swarm/swarm-stack';

/** cdktf's app: synthesizes the deployment (deployment.ts) for its target. */
function main(): number {
  const topology = deploymentTopology(process.env);

  const app = new App();
  const props = {
    topology,
    root: __dirname,
    loadRunId: process.env.LOAD_RUN_ID,
    loadUser: typeof process.getuid === 'function' ? `${process.getuid()}:${process.getgid?.()}` : undefined,
  };
  // `target: 'swarm'` in deployment.ts deploys the same topology as Swarm services.
  if (topology.target === 'swarm') new WsNotificationsSwarmStack(app, topology.name, props);
  else new WsNotificationsStack(app, topology.name, props);
  app.synth();
  return EXIT.ok;
}

runEntryPoint(main);
