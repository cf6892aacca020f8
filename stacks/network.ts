import { Construct } from 'constructs';
import { Network } from '@cdktf/provider-docker/lib/network';

export interface NotificationNetworkProps {
  readonly name: string;
}

/** The bridge network the proxy, the fleet and the load client share; Docker DNS resolves container names on it. */
export class NotificationNetwork extends Construct {
  readonly network: Network;

  constructor(scope: Construct, id: string, props: NotificationNetworkProps) {
    super(scope, id);
    this.network = new Network(this, 'network', {
      name: props.name,
      driver: 'bridge',
      labels: [{ label: 'ws-notifications.managed', value: 'true' }],
    });
  }

  get name(): string {
    return this.network.name;
  }
}
