import { Construct } from 'constructs';
import { Network } from '@cdktf/provider-docker/lib/network';

export interface NotificationNetworkProps {
  readonly name: string;
  /**
   * The subnet (a.b.c.d/n).
   * @default Docker picks one
   */
  readonly subnet?: string;
  /**
   * Where containers get addresses, inside the subnet.
   * @default all of the subnet
   */
  readonly ipRange?: string;
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
      ...(props.subnet ? { ipamConfig: [{ subnet: props.subnet, ...(props.ipRange ? { ipRange: props.ipRange } : {}) }] } : {}),
    });
  }

  get name(): string {
    return this.network.name;
  }
}
