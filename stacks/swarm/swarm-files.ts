import { createHash } from 'node:crypto';
import { Construct } from 'constructs';
import { Config } from '@cdktf/provider-docker/lib/config';
import { Secret } from '@cdktf/provider-docker/lib/secret';
import { containerLabels } from '../container-attributes';

/**
 * A file every task of a service gets, wherever it runs: a `docker_config`, or a `docker_secret`
 * for keys (kept encrypted in the swarm's Raft log, mounted in memory). Swarm never changes one
 * in place, so the name carries a hash of the content: new content is a new object, and the
 * services using it roll to it.
 */
export interface SwarmFileProps {
  /** The name's stem; the object is `<stem>-<hash of the content>`. */
  readonly stem: string;
  readonly content: string | Buffer;
  /**
   * A docker_secret (encrypted in the swarm's store, mounted in memory) instead of a docker_config.
   * @default false
   */
  readonly secret?: boolean;
  readonly labels: Record<string, string>;
}

export class SwarmFile extends Construct {
  readonly name: string;
  readonly id: string;

  constructor(scope: Construct, id: string, props: SwarmFileProps) {
    super(scope, id);
    const data = Buffer.from(props.content).toString('base64');
    this.name = `${props.stem}-${createHash('sha256').update(data).digest('hex').slice(0, 10)}`;
    const attributes = { name: this.name, data, lifecycle: { createBeforeDestroy: true } };
    // Only secrets carry labels in the provider.
    this.id = (
      props.secret
        ? new Secret(this, 'secret', { ...attributes, labels: containerLabels(props.labels) })
        : new Config(this, 'config', attributes)
    ).id;
  }

  /** A container_spec `configs` entry: the file at `path`. */
  asConfig(path: string, mode = 0o444) {
    return { configId: this.id, configName: this.name, fileName: path, fileMode: mode };
  }

  /**
   * A container_spec `secrets` entry: the file at `path`, readable by its owner only: root, or
   * `owner` (uid) for a process that does not run as root.
   */
  asSecret(path: string, owner?: string) {
    return {
      secretId: this.id,
      secretName: this.name,
      fileName: path,
      fileMode: 0o400,
      ...(owner ? { fileUid: owner, fileGid: owner } : {}),
    };
  }
}
