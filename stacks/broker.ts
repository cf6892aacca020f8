import { Construct } from 'constructs';
import { Container } from '@cdktf/provider-docker/lib/container';
import { Volume } from '@cdktf/provider-docker/lib/volume';
import { BROKER_CLIENT_PORT, BROKER_CONTAINER } from '../app/src/topology';
import { containerLabels, containerOf, type EngineContainerProps } from './container-attributes';
import { pulledImage } from './local-image';
import { brokerSpec } from '../components/broker';
import { withStopGrace } from '../components/spec';

/** Where things are inside the broker container. */
export const BROKER_PATHS = {
  clientPort: BROKER_CLIENT_PORT,
  monitoringPort: 8222,
  store: '/data',
  /** The users (components/broker-auth.ts), bind-mounted read-only. */
  authFile: '/etc/nats/auth.conf',
} as const;

/** Reads the topology's `broker` and `images.nats`. */
export interface BrokerProps extends EngineContainerProps {
  /**
   * Container name, and so the replicas' host name for it.
   * @default BROKER_CONTAINER ("ws-nats"), the host of the default broker URL
   */
  readonly name?: string;
  /**
   * How long nats-server gets to flush its store on stop.
   * @default 10 s
   */
  readonly stopGraceMs?: number;
  /** The users' file on this machine (certs/secrets.ts renders it): nobody connects without a password. */
  readonly authFile: string;
}

/**
 * The broker every replica shares: nats-server with JetStream, its file store on a named volume
 * that outlives the container (a replaced container keeps every topic's history and the epoch).
 * Closed to strangers: only the users of its auth file connect (the replicas', a backend's).
 * The monitoring endpoint (/healthz, /varz, /jsz) is published on 127.0.0.1 only; clients reach
 * the broker over the service network alone.
 */
export class Broker extends Construct {
  readonly container: Container;
  readonly volume: Volume;
  readonly name: string;

  constructor(scope: Construct, id: string, props: BrokerProps) {
    super(scope, id);
    const { broker, images } = props.topology;
    this.name = props.name ?? BROKER_CONTAINER;
    this.volume = new Volume(this, 'store', { name: `${this.name}-data`, labels: containerLabels(props.labels) });
    const image = pulledImage(this, 'image', images.nats);
    const spec = brokerSpec({
      store: BROKER_PATHS.store,
      port: BROKER_PATHS.clientPort,
      monitoringPort: BROKER_PATHS.monitoringPort,
      serverName: this.name,
      authFile: BROKER_PATHS.authFile,
    });
    this.container = new Container(this, 'container', {
      name: this.name,
      image: image.imageId,
      // The public image's entrypoint runs the command; the offline stand-in has nats-server on PATH.
      ...containerOf(withStopGrace(spec, props.stopGraceMs)),
      volumes: [
        { volumeName: this.volume.name, containerPath: BROKER_PATHS.store },
        { hostPath: props.authFile, containerPath: BROKER_PATHS.authFile, readOnly: true },
      ],
      ports: [{ internal: BROKER_PATHS.monitoringPort, external: broker.monitoringPort, ip: '127.0.0.1' }],
      networksAdvanced: [{ name: props.networkName, aliases: [this.name] }],
      restart: 'unless-stopped',
      wait: true,
      waitTimeout: 60,
      labels: containerLabels(props.labels),
    });
  }
}
