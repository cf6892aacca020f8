import { Construct } from 'constructs';
import { Container } from '@cdktf/provider-docker/lib/container';
import { replicaName, stopGraceMs, toServerEnv, type ServerConfig } from '../app/src/topology';
import { containerEnv, containerLabels } from './container-attributes';

export interface ServerFleetProps {
  readonly replicas: number;
  readonly server: ServerConfig;
  readonly imageId: string;
  readonly networkName: string;
  readonly labels: Record<string, string>;
}

/** N WebSocket server containers, ws-server-0..N-1, each a replica of the same image. */
export class ServerFleet extends Construct {
  readonly containers: Container[] = [];
  readonly names: string[] = [];

  constructor(scope: Construct, id: string, props: ServerFleetProps) {
    super(scope, id);
    const { server } = props;
    // Docker stops with SIGTERM, waits this long, then kills: the drain deadline plus a little.
    const stopSeconds = Math.ceil(stopGraceMs(server) / 1000);
    const healthUrl = `http://127.0.0.1:${server.port}/healthz`;
    for (let i = 0; i < props.replicas; i++) {
      // The construct id is the name too, so ids are stable per index.
      const name = replicaName(i);
      const env = toServerEnv(server, name);
      const container = new Container(this, name, {
        name,
        image: props.imageId,
        command: ['node', 'dist/server/main.js'],
        env: containerEnv(env),
        networksAdvanced: [{ name: props.networkName, aliases: ['ws-server'] }],
        restart: 'unless-stopped',
        stopSignal: 'SIGTERM',
        stopTimeout: stopSeconds,
        destroyGraceSeconds: stopSeconds,
        healthcheck: {
          test: ['CMD', 'node', '-e', `fetch('${healthUrl}').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))`],
          interval: '5s',
          timeout: '3s',
          startPeriod: '5s',
          retries: 3,
        },
        // A replica that never turns healthy fails the deploy, naming this resource.
        wait: true,
        waitTimeout: 60,
        labels: containerLabels({ ...props.labels, 'ws-notifications.replica': String(i) }),
      });
      this.containers.push(container);
      this.names.push(name);
    }
  }
}
