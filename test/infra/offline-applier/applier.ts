import { spawn } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';

import Docker from 'dockerode';
import { packContext } from './build-context';
import { healthcheckSpec, labelsOf, ns, serviceSpec } from './engine-api';
import { evaluateSelfCondition, parseSelfCondition, referencesIn, resolve, UnsupportedError } from './expressions';
import {
  type Attrs,
  type ContainerConfig,
  type DataConfig,
  first,
  type ImageConfig,
  type LocalExec,
  type NetworkConfig,
  type RawConfig,
  type ResolvedConfig,
  replicasOf,
  type ServiceConfig,
  type StoredFileConfig,
  type TerraformDocument,
  type VolumeConfig,
} from './resources';

/**
 * The offline stand-in for `terraform apply` with the kreuzwerker/docker provider, used by the
 * Docker tests on machines where the provider cannot be downloaded. It applies the synthesized
 * cdk.tf.json to a real Docker engine through its API (dockerode), in dependency order,
 * resolving references between resources. It is strict: a resource type, attribute or
 * expression it does not know fails with its name, so it cannot drift silently from what the
 * stack emits. It is a test tool, not a product feature.
 *
 * Semantics follow the provider where the stack relies on them: docker_container attributes
 * force replacement (destroy, then create); a container waits for health (`wait`), or for its
 * exit (`attach`) with its logs and exit code; postconditions are checked; `replace_triggered_by`
 * replaces when the referenced resource was replaced; terraform_data is replaced when
 * `triggers_replace` changes and then runs its local-exec provisioners; `moved` blocks rename
 * state entries before anything is planned. Resources that left the configuration are destroyed
 * after the others are applied.
 */

export interface StateEntry<C = ResolvedConfig> {
  type: string;
  config: C;
  attrs: Attrs;
  dependsOn: string[];
}
export type State = Record<string, StateEntry>;

/** One configured resource in plan order, with what its decision needs. */
export interface PlanStep {
  readonly address: string;
  readonly type: string;
  /** As the document has it, references unresolved (they resolve during the execution). */
  readonly config: RawConfig;
  /** What it refers to, depends on, or is replaced with. */
  readonly deps: string[];
  /** Replaced whenever one of these was (lifecycle.replace_triggered_by). */
  readonly triggeredBy: string[];
  /** lifecycle.create_before_destroy. */
  readonly createFirst: boolean;
}

/** What an apply will do, decided before the engine is touched. */
export interface Plan {
  /** The state with the moved blocks applied. */
  readonly state: State;
  readonly moved: { from: string; to: string }[];
  /** Every configured resource, dependencies first. */
  readonly steps: PlanStep[];
  /** In the state but no longer configured: destroyed last, dependents first. */
  readonly orphans: string[];
  readonly outputs: NonNullable<TerraformDocument['output']>;
}

export type Action = 'create' | 'replace' | 'update' | 'keep';

/** How one resource type is created and destroyed on the engine. */
interface Driver<C extends object = object> {
  create(address: string, config: C): Promise<Attrs>;
  destroy(address: string, entry: StateEntry<C>): Promise<void>;
}

/** What an execution has done so far. */
interface ExecutionLog {
  readonly report: ApplyReport;
  /** Created, replaced or updated in this apply: what replace_triggered_by looks at. */
  readonly changed: Set<string>;
  readonly staleImages: { id: string; keep: boolean }[];
  readonly deposed: { address: string; entry: StateEntry }[];
}

/** The first part of a `lifecycle.replace_triggered_by` or reference: `type.name`. */
const resourceOf = (reference: string) => reference.split('.').slice(0, 2).join('.');

/**
 * The plan of a (validated) document against a state. Pure: moved blocks are applied to a copy,
 * as terraform reads them (an object at `from` now lives at `to`, unless `to` already has one).
 */
export function planApply(doc: TerraformDocument, current: State): Plan {
  const state: State = structuredClone(current);
  const moved: Plan['moved'] = [];
  for (const { from, to } of doc.moved ?? []) {
    if (!state[from] || state[to]) continue;
    moved.push({ from, to });
    state[to] = state[from];
    delete state[from];
    for (const entry of Object.values(state)) entry.dependsOn = entry.dependsOn.map((d) => (d === from ? to : d));
  }
  const configs = new Map<string, { type: string; config: RawConfig }>();
  for (const [type, resources] of Object.entries(doc.resource ?? {})) {
    for (const [name, config] of Object.entries(resources)) configs.set(`${type}.${name}`, { type, config });
  }
  const steps = new Map<string, PlanStep>();
  for (const [address, { type, config }] of configs) {
    const { lifecycle, depends_on, ...rest } = config;
    const triggeredBy: string[] = (lifecycle?.replace_triggered_by ?? []).map(resourceOf);
    const refs = referencesIn(rest, address).map((r) => r.address);
    const deps = [...new Set([...refs, ...(depends_on ?? []), ...triggeredBy])];
    steps.set(address, { address, type, config, deps, triggeredBy, createFirst: Boolean(lifecycle?.create_before_destroy) });
  }
  const order = topoSort([...steps.keys()], (a) => steps.get(a)!.deps);
  const orphans = Object.keys(state).filter((a) => !configs.has(a));
  return { state, moved, steps: order.map((a) => steps.get(a)!), orphans, outputs: doc.output ?? {} };
}

/**
 * What happens to one resource, once its references are resolved: created when it is not in the
 * state; kept while the attributes that force a replacement (and any replace_triggered_by)
 * are unchanged; otherwise replaced, except a service the provider updates in place (a
 * rolling update, or a new replica count), as Swarm does.
 */
export function decide(step: PlanStep, resolved: ResolvedConfig, old: StateEntry | undefined, changed: ReadonlySet<string>): Action {
  if (!old) return 'create';
  const sets = SETS[step.type] ?? [];
  const forcing = (c: ResolvedConfig) =>
    canonical(
      Object.fromEntries(
        Object.entries(c)
          .filter(([k]) => !NO_REPLACE.has(k) && (step.type !== 'terraform_data' || k === 'triggers_replace'))
          .map(([k, v]) => [k, sets.includes(k) && Array.isArray(v) ? [...v].sort() : v]),
      ),
    );
  const replace = forcing(old.config) !== forcing(resolved) || step.triggeredBy.some((t) => changed.has(t));
  if (!replace) return 'keep';
  return step.type === 'docker_service' && old.config.name === resolved.name ? 'update' : 'replace';
}

/**
 * What each resource type may carry, all the way down its nested blocks (`true`: a value, not
 * looked into): anything else is refused, naming it.
 */
type Shape = { [key: string]: true | Shape };
const LABELS: Shape = { label: true, value: true };
const ROLLOUT: Shape = { parallelism: true, delay: true, failure_action: true, monitor: true, max_failure_ratio: true, order: true };
const HEALTHCHECK: Shape = { test: true, interval: true, timeout: true, start_period: true, retries: true };
const CREATE_BEFORE_DESTROY: Shape = { create_before_destroy: true };
/** The keys as attributes that are values. */
const values = (...keys: string[]): Shape => Object.fromEntries(keys.map((k) => [k, true]));

const SHAPES: Record<string, Shape> = {
  docker_network: { ...values('name', 'driver', 'attachable'), labels: LABELS, ipam_config: values('subnet', 'ip_range') },
  docker_service: {
    ...values('name', 'depends_on', 'lifecycle'),
    labels: LABELS,
    mode: { replicated: values('replicas'), global: true },
    task_spec: {
      container_spec: {
        ...values('image', 'command', 'args', 'env', 'hostname', 'user', 'sysctl', 'stop_signal', 'stop_grace_period', 'cap_add'),
        healthcheck: HEALTHCHECK,
        configs: values('config_id', 'config_name', 'file_name', 'file_mode'),
        secrets: values('secret_id', 'secret_name', 'file_name', 'file_mode', 'file_uid', 'file_gid'),
        mounts: values('type', 'source', 'target', 'read_only'),
      },
      networks_advanced: values('name', 'aliases'),
      restart_policy: values('condition', 'delay', 'max_attempts', 'window'),
      placement: values('constraints', 'max_replicas'),
    },
    endpoint_spec: { mode: true, ports: values('target_port', 'published_port', 'publish_mode', 'protocol') },
    update_config: ROLLOUT,
    rollback_config: ROLLOUT,
    converge_config: values('delay', 'timeout'),
  },
  docker_config: { ...values('name', 'data'), lifecycle: CREATE_BEFORE_DESTROY },
  docker_secret: { ...values('name', 'data'), labels: LABELS, lifecycle: CREATE_BEFORE_DESTROY },
  docker_volume: { ...values('name', 'driver'), labels: LABELS },
  docker_image: { ...values('name', 'keep_locally', 'triggers'), build: values('context', 'dockerfile', 'build_args', 'label') },
  terraform_data: { ...values('input', 'triggers_replace', 'provisioner', 'depends_on'), lifecycle: values('replace_triggered_by') },
  docker_container: {
    ...values(
      'name',
      'image',
      'command',
      'env',
      'sysctls',
      'restart',
      'stop_signal',
      'stop_timeout',
      'destroy_grace_seconds',
      'wait',
      'wait_timeout',
      'attach',
      'logs',
      'must_run',
      'rm',
      'user',
      'depends_on',
    ),
    labels: LABELS,
    networks_advanced: values('name', 'aliases'),
    ports: values('internal', 'external', 'ip'),
    volumes: values('host_path', 'volume_name', 'container_path', 'read_only'),
    ulimit: values('name', 'soft', 'hard'),
    healthcheck: HEALTHCHECK,
    capabilities: values('add', 'drop'),
    lifecycle: values('postcondition', 'replace_triggered_by'),
  },
};

function checkShape(value: unknown, shape: true | Shape, where: string): void {
  if (shape === true || value === null || typeof value !== 'object') return;
  for (const item of Array.isArray(value) ? value : [value]) {
    for (const [k, v] of Object.entries(item as object)) {
      if (!Object.hasOwn(shape, k)) throw new UnsupportedError(`${where}.${k} is not supported`);
      checkShape(v, shape[k], `${where}.${k}`);
    }
  }
}

/** Attributes the provider keeps as sets (the cdktf bindings read them through tolist): their order is no change. */
const SETS: Record<string, string[]> = { docker_container: ['env'] };

/** Attributes that do not force a replacement when they change. */
const NO_REPLACE = new Set(['depends_on', 'lifecycle', 'wait', 'wait_timeout', 'destroy_grace_seconds', 'keep_locally']);

const canonical = (v: unknown): string =>
  JSON.stringify(v, (_k, x) => (x && typeof x === 'object' && !Array.isArray(x) ? Object.fromEntries(Object.entries(x).sort()) : x));

export interface ApplyReport {
  created: string[];
  replaced: string[];
  destroyed: string[];
  kept: string[];
  outputs: Record<string, unknown>;
}

export class ApplyError extends Error {
  /** Attributes of a resource that was created but failed afterwards (Terraform taints it). */
  constructor(
    message: string,
    readonly partial?: Attrs,
  ) {
    super(message);
  }
}

export class OfflineApplier {
  constructor(
    private readonly stateFile: string,
    private readonly docker = new Docker(),
    private readonly log: (line: string) => void = () => undefined,
  ) {}

  private readState(): State {
    return existsSync(this.stateFile) ? JSON.parse(readFileSync(this.stateFile, 'utf8')) : {};
  }

  private writeState(state: State): void {
    writeFileSync(this.stateFile, JSON.stringify(state, null, 2));
  }

  /** Checks the whole document before touching anything. */
  validate(doc: TerraformDocument): void {
    for (const key of Object.keys(doc)) {
      if (!['//', 'terraform', 'provider', 'resource', 'output', 'moved'].includes(key))
        throw new UnsupportedError(`top-level block "${key}" is not supported`);
    }
    for (const m of doc.moved ?? []) {
      for (const k of Object.keys(m)) if (!['from', 'to'].includes(k)) throw new UnsupportedError(`moved.${k} is not supported`);
      const [fromType] = String(m.from).split('.');
      const [toType, toName] = String(m.to).split('.');
      if (!/^[a-z_]+\.[A-Za-z0-9_-]+$/.test(m.from) || !/^[a-z_]+\.[A-Za-z0-9_-]+$/.test(m.to))
        throw new UnsupportedError(`moved ${m.from} -> ${m.to}: only plain resource addresses are supported`);
      if (fromType !== toType) throw new UnsupportedError(`moved ${m.from} -> ${m.to}: a resource cannot change its type`);
      if (!doc.resource?.[toType]?.[toName]) throw new UnsupportedError(`moved ${m.from} -> ${m.to}: ${m.to} is not in the configuration`);
    }
    for (const [key, value] of Object.entries(doc.terraform ?? {})) {
      if (key === 'required_providers') {
        for (const name of Object.keys(value as object))
          if (name !== 'docker') throw new UnsupportedError(`provider ${name} is not supported`);
      } else if (key !== 'backend') throw new UnsupportedError(`terraform.${key} is not supported`);
    }
    for (const [name, configs] of Object.entries(doc.provider ?? {})) {
      if (name !== 'docker') throw new UnsupportedError(`provider ${name} is not supported`);
      for (const c of configs)
        for (const k of Object.keys(c)) if (k !== 'host') throw new UnsupportedError(`provider.docker.${k} is not supported`);
    }
    for (const [type, resources] of Object.entries(doc.resource ?? {})) {
      const shape = SHAPES[type];
      if (!shape) throw new UnsupportedError(`resource type ${type} is not supported`);
      for (const [name, config] of Object.entries(resources)) {
        const where = `${type}.${name}`;
        for (const [key, value] of Object.entries(config)) {
          if (key === '//') continue;
          if (!Object.hasOwn(shape, key)) throw new UnsupportedError(`${where}: attribute ${key} is not supported`);
          checkShape(value, shape[key], `${where}: attribute ${key}`);
          if (key === 'provisioner') {
            for (const p of value as object[]) {
              for (const [kind, body] of Object.entries(p)) {
                if (kind !== 'local-exec') throw new UnsupportedError(`${where}: provisioner ${kind} is not supported`);
                for (const k of Object.keys(body as object))
                  if (!['command', 'environment'].includes(k)) throw new UnsupportedError(`${where}: local-exec.${k} is not supported`);
              }
            }
          }
          if (key !== 'lifecycle') referencesIn(value, `${where}.${key}`);
        }
        for (const c of config.lifecycle?.postcondition ?? []) parseSelfCondition(c.condition, `${where}.lifecycle.postcondition`);
      }
    }
  }

  /** Plans the document against the state (nothing touched yet), then executes the plan. */
  async apply(doc: TerraformDocument): Promise<ApplyReport> {
    this.validate(doc);
    return this.execute(planApply(doc, this.readState()));
  }

  /**
   * Carries a plan out: the moved entries saved first, then each resource in order (created,
   * kept, replaced or updated as `decide` says once its references resolve), then what was
   * deposed and what left the configuration, dependents first.
   */
  async execute(plan: Plan): Promise<ApplyReport> {
    const { state } = plan;
    for (const { from, to } of plan.moved) this.log(`moved ${from} -> ${to}`);
    if (plan.moved.length) this.writeState(state);
    const run: ExecutionLog = {
      report: { created: [], replaced: [], destroyed: [], kept: [], outputs: {} },
      changed: new Set<string>(),
      staleImages: [],
      deposed: [],
    };
    for (const step of plan.steps) await this.executeStep(step, state, run);
    for (const { address, entry } of run.deposed) {
      this.log(`destroy ${address} (deposed)`);
      await this.driver(entry.type, address).destroy(address, entry);
    }
    run.report.destroyed.push(...(await this.destroyInOrder(state, plan.orphans)));
    for (const image of run.staleImages)
      if (!image.keep)
        await this.docker
          .getImage(image.id)
          .remove()
          .catch(() => undefined);
    for (const [name, output] of Object.entries(plan.outputs)) {
      run.report.outputs[name] = resolve(output.value, (a) => state[a]?.attrs, `output.${name}`);
    }
    this.writeState(state);
    return run.report;
  }

  /** One resource of the plan: its references resolved against the state as it is now, then what `decide` says. */
  private async executeStep(step: PlanStep, state: State, run: ExecutionLog): Promise<void> {
    const { address, type, config, deps } = step;
    // validate() checked every key against SHAPES: the resolved value has the document's shape.
    const resolved = resolve(stripMeta(config), (a) => state[a]?.attrs, address) as ResolvedConfig;
    const old = state[address];
    const action = decide(step, resolved, old, run.changed);
    if (action === 'keep') {
      state[address] = { ...old, config: resolved, dependsOn: deps };
      run.report.kept.push(address);
      return;
    }
    if (action === 'update') {
      this.log(`update ${address}`);
      const attrs = await this.updateService(address, old!.attrs.id, resolved as unknown as ServiceConfig);
      state[address] = { type, config: resolved, attrs, dependsOn: deps };
      this.writeState(state);
      run.changed.add(address);
      run.report.replaced.push(address);
      return;
    }
    this.log(`${action} ${address}`);
    if (action === 'replace') await this.makeRoom(step, old!, state, run);
    await this.createStep(step, resolved, old, state, run);
    (action === 'create' ? run.report.created : run.report.replaced).push(address);
  }

  /**
   * Before a replacement: with create_before_destroy the old object waits until its dependents
   * have moved to the new one; an image is built before the old one goes (a failed build leaves
   * the old one in place and in the state); anything else is destroyed first, as the provider does.
   */
  private async makeRoom(step: PlanStep, old: StateEntry, state: State, run: ExecutionLog): Promise<void> {
    if (step.createFirst) run.deposed.push({ address: step.address, entry: old });
    else if (step.type !== 'docker_image') {
      await this.driver(step.type, step.address).destroy(step.address, old);
      delete state[step.address];
      this.writeState(state);
    }
  }

  /** Creates one resource and checks its postconditions; what was created but failed stays in the state, tainted. */
  private async createStep(
    step: PlanStep,
    resolved: ResolvedConfig,
    old: StateEntry | undefined,
    state: State,
    run: ExecutionLog,
  ): Promise<void> {
    const { address, type, config, deps } = step;
    try {
      const attrs = await this.driver(type, address).create(address, resolved);
      if (old?.attrs.image_id && type === 'docker_image' && old.attrs.image_id !== attrs.image_id) {
        run.staleImages.push({ id: old.attrs.image_id, keep: Boolean(old.config.keep_locally) });
      }
      state[address] = { type, config: resolved, attrs, dependsOn: deps };
      this.writeState(state);
      run.changed.add(address);
      for (const c of config.lifecycle?.postcondition ?? []) {
        if (!evaluateSelfCondition(c.condition, attrs, address))
          throw new ApplyError(`${address}: postcondition failed: ${c.error_message}`);
      }
    } catch (error) {
      if (error instanceof ApplyError && error.partial) {
        // Keep what exists in the state, so destroy removes it (a tainted resource).
        state[address] = { type, config: { ...resolved, tainted: true }, attrs: error.partial, dependsOn: deps };
        this.writeState(state);
      }
      if (error instanceof ApplyError || error instanceof UnsupportedError) throw error;
      throw new ApplyError(`${address}: ${(error as Error).message}`);
    }
  }

  /** Destroys everything in the state, dependents first. A second call finds nothing to do. */
  async destroy(): Promise<string[]> {
    const state = this.readState();
    return this.destroyInOrder(state, Object.keys(state));
  }

  /**
   * Destroys these resources, each once its dependents are gone, the rest at the same time (as
   * Terraform does, up to its parallelism): removed replicas drain together, not one after another.
   * The state is saved after each.
   */
  private async destroyInOrder(state: State, addresses: string[]): Promise<string[]> {
    topoSort(addresses, (a) => state[a].dependsOn.filter((d) => addresses.includes(d))); // refuses a cycle
    const destroyed: string[] = [];
    const going = new Map<string, Promise<void>>();
    const destroyAfterDependents = (address: string): Promise<void> => {
      let done = going.get(address);
      if (!done) {
        const dependents = addresses.filter((other) => state[other]?.dependsOn.includes(address));
        done = Promise.all(dependents.map(destroyAfterDependents)).then(async () => {
          this.log(`destroy ${address}`);
          await this.driver(state[address].type, address).destroy(address, state[address]);
          delete state[address];
          this.writeState(state);
          destroyed.push(address);
        });
        going.set(address, done);
      }
      return done;
    };
    await Promise.all(addresses.map(destroyAfterDependents));
    return destroyed;
  }

  /**
   * How each resource type is created and destroyed on the engine: a type without a driver is
   * refused, naming it (validate refuses it first).
   */
  private readonly drivers: Record<string, Driver> = {
    docker_network: {
      create: (_a, c: NetworkConfig) => this.createNetwork(c),
      destroy: (_a, e) => this.removeNetwork(e),
    },
    // Like the provider: a volume of that name that already exists is taken over, data and all.
    docker_volume: {
      create: async (_a, c: VolumeConfig) => {
        const created = await this.docker.createVolume({ Name: c.name, Driver: c.driver ?? 'local', Labels: labelsOf(c.labels) });
        const info = await created.inspect();
        return { id: info.Name, name: info.Name, mountpoint: info.Mountpoint };
      },
      destroy: (_a, e) => this.docker.getVolume(e.attrs.id).remove().catch(ignoreMissing),
    },
    docker_image: {
      create: (a, c: ImageConfig) => (c.build ? this.buildImage(a, c) : this.localImage(a, c)),
      destroy: async (_a, e: StateEntry<ImageConfig>) => {
        if (!e.config.keep_locally) await this.docker.getImage(e.attrs.id).remove().catch(ignoreMissing);
      },
    },
    terraform_data: {
      create: async (a, c: DataConfig) => {
        for (const p of c.provisioner ?? []) await runLocalExec(a, p['local-exec']);
        return { id: `${Date.now()}`, input: c.input, output: c.input };
      },
      destroy: async () => undefined,
    },
    docker_container: {
      create: (a, c: ContainerConfig) => this.createContainer(a, c),
      destroy: (_a, e: StateEntry<ContainerConfig>) => this.removeContainer(e),
    },
    docker_config: {
      create: async (_a, c: StoredFileConfig) => ({
        id: (await this.docker.createConfig({ Name: c.name, Data: c.data })).id,
        name: c.name,
      }),
      destroy: (_a, e) => this.docker.getConfig(e.attrs.id).remove().catch(ignoreMissing),
    },
    docker_secret: {
      create: async (_a, c: StoredFileConfig) => ({
        id: (await this.docker.createSecret({ Name: c.name, Data: c.data, Labels: labelsOf(c.labels) })).id,
        name: c.name,
      }),
      destroy: (_a, e) => this.docker.getSecret(e.attrs.id).remove().catch(ignoreMissing),
    },
    docker_service: {
      create: async (a, c: ServiceConfig) => {
        const service = await this.docker.createService(serviceSpec(c));
        await this.converge(a, service.id, c);
        return { id: service.id, name: c.name };
      },
      destroy: (_a, e) => this.removeService(e),
    },
  };

  private driver(type: string, address: string): Driver {
    const driver = this.drivers[type];
    if (!driver) throw new UnsupportedError(`${address}: cannot apply ${type}`);
    return driver;
  }

  private async createNetwork(c: NetworkConfig): Promise<Attrs> {
    const ipam = c.ipam_config ?? [];
    const network = await this.docker.createNetwork({
      Name: c.name,
      Driver: c.driver ?? 'bridge',
      Attachable: Boolean(c.attachable),
      Labels: labelsOf(c.labels),
      CheckDuplicate: true,
      ...(ipam.length ? { IPAM: { Config: ipam.map((i) => ({ Subnet: i.subnet, ...(i.ip_range ? { IPRange: i.ip_range } : {}) })) } } : {}),
    });
    return { id: network.id, name: c.name };
  }

  private async buildImage(address: string, c: ImageConfig): Promise<Attrs> {
    const build = first(c.build)!;
    const stream = await this.docker.buildImage(packContext(build.context), {
      t: c.name,
      dockerfile: build.dockerfile ?? 'Dockerfile',
      buildargs: build.build_args ?? {},
      labels: build.label ?? {},
      rm: true,
      forcerm: true,
    });
    const output: BuildEvent[] = await new Promise((res, rej) =>
      this.docker.modem.followProgress(stream, (err: Error | null, out: BuildEvent[]) => (err ? rej(err) : res(out))),
    );
    const failure = output.find((o) => o.error || o.errorDetail);
    if (failure) {
      const tail = output
        .map((o) => o.stream ?? '')
        .join('')
        .trim()
        .split('\n')
        .slice(-8)
        .join('\n');
      throw new ApplyError(`${address}: image build failed: ${failure.error ?? failure.errorDetail?.message}\n${tail}`);
    }
    const info = await this.docker.getImage(c.name).inspect();
    return { id: info.Id, image_id: info.Id, name: c.name };
  }

  /** An image the provider would pull: there is no registry here, so it must already be on the engine. */
  private async localImage(address: string, c: ImageConfig): Promise<Attrs> {
    const info = await this.docker
      .getImage(c.name)
      .inspect()
      .catch(() => undefined);
    if (!info)
      throw new ApplyError(
        `${address}: image ${c.name} is not on this engine and cannot be pulled here (no registry): build the offline images (scripts/offline-images.sh) and use BASE_IMAGES=offline`,
      );
    return { id: info.Id, image_id: info.Id, name: c.name };
  }

  private async createContainer(address: string, c: ContainerConfig): Promise<Attrs> {
    const networks = c.networks_advanced ?? [];
    const ports = c.ports ?? [];
    const caps = first(c.capabilities);
    const container = await this.docker.createContainer({
      name: c.name,
      Image: c.image,
      Cmd: c.command && [...c.command],
      Env: c.env && [...c.env],
      User: c.user,
      Labels: labelsOf(c.labels),
      StopSignal: c.stop_signal,
      StopTimeout: c.stop_timeout,
      ExposedPorts: Object.fromEntries(ports.map((p) => [`${p.internal}/tcp`, {}])),
      Healthcheck: healthcheckSpec(c.healthcheck),
      HostConfig: {
        PortBindings: Object.fromEntries(ports.map((p) => [`${p.internal}/tcp`, [{ HostIp: p.ip ?? '', HostPort: String(p.external) }]])),
        Binds: (c.volumes ?? []).map((v) => {
          if ((v.host_path === undefined) === (v.volume_name === undefined))
            throw new ApplyError(`${address}: a volume needs exactly one of host_path and volume_name`);
          return `${v.host_path ?? v.volume_name}:${v.container_path}${v.read_only ? ':ro' : ''}`;
        }),
        Ulimits: (c.ulimit ?? []).map((u) => ({ Name: u.name, Soft: u.soft, Hard: u.hard })),
        Sysctls: c.sysctls,
        CapAdd: caps?.add && [...caps.add],
        CapDrop: caps?.drop && [...caps.drop],
        RestartPolicy: c.restart ? { Name: c.restart } : undefined,
        NetworkMode: networks[0]?.name,
      },
      NetworkingConfig: networks[0]
        ? { EndpointsConfig: { [networks[0].name]: { Aliases: [...(networks[0].aliases ?? [])] } } }
        : undefined,
    });
    for (const extra of networks.slice(1))
      await this.docker
        .getNetwork(extra.name)
        .connect({ Container: container.id, EndpointConfig: { Aliases: [...(extra.aliases ?? [])] } });
    await container.start();
    const attrs: Attrs = { id: container.id, name: c.name };

    if (c.attach) {
      const { StatusCode } = await container.wait();
      attrs.exit_code = StatusCode;
      if (c.logs) attrs.container_logs = (await container.logs({ stdout: true, stderr: true })).toString('utf8');
      this.log(`${address} exited with ${StatusCode}`);
      return attrs;
    }
    try {
      if (c.wait) await this.waitHealthy(address, container, (c.wait_timeout ?? 60) * 1000);
      const info = await container.inspect();
      attrs.exit_code = info.State.ExitCode;
      if (c.must_run !== false && !info.State.Running)
        throw new ApplyError(`${address}: container ${c.name} is not running (exit code ${info.State.ExitCode})`);
    } catch (error) {
      throw new ApplyError((error as Error).message, attrs);
    }
    return attrs;
  }

  private async waitHealthy(address: string, container: Docker.Container, timeoutMs: number): Promise<void> {
    const end = Date.now() + timeoutMs;
    let last: Docker.ContainerInspectInfo | undefined;
    while (Date.now() < end) {
      last = await container.inspect();
      const health = last.State.Health?.Status;
      if (!last.State.Running) break;
      if (health === 'healthy' || (!last.State.Health && last.State.Running)) return;
      if (health === 'unhealthy') break;
      await sleep(POLL_MS);
    }
    const log = (last?.State.Health?.Log ?? []).slice(-1)[0]?.Output?.trim() ?? '';
    const logs = (await container.logs({ stdout: true, stderr: true, tail: 10 }).catch(() => Buffer.from(''))).toString('utf8');
    throw new ApplyError(
      `${address}: container ${last?.Name.slice(1)} did not become healthy (state ${last?.State.Status}, health ${last?.State.Health?.Status ?? 'none'}) ${log}\n${logs}`,
    );
  }

  private async updateService(address: string, id: string, c: ServiceConfig): Promise<Attrs> {
    const service = this.docker.getService(id);
    const { Version } = await service.inspect();
    await service.update({ version: Version.Index, ...serviceSpec(c) });
    await this.converge(address, id, c);
    return { id, name: c.name };
  }

  /** Like the provider's converge_config: waits until the service runs exactly its replicas (healthy, where checked). */
  private async converge(address: string, id: string, c: ServiceConfig): Promise<void> {
    const cc = first(c.converge_config);
    if (!cc) return;
    const end = Date.now() + ns(cc.timeout ?? '3m') / 1e6;
    let running = 0;
    let total = 0;
    let replicas = replicasOf(c);
    let why = '';
    while (Date.now() < end) {
      // A global service runs one task on every node that takes tasks.
      if (first(c.mode)?.global)
        replicas = ((await this.docker.listNodes()) as SwarmNode[]).filter(
          (n) => n.Status?.State === 'ready' && n.Spec?.Availability === 'active',
        ).length;
      const tasks = (await this.docker.listTasks({ filters: { service: [id] } })) as SwarmTask[];
      const live = tasks.filter((t) => t.DesiredState === 'running');
      running = live.filter((t) => t.Status?.State === 'running').length;
      total = live.length;
      if (running === replicas && total === replicas) return;
      why = lastTaskError(tasks);
      await sleep(ns(cc.delay ?? '1s') / 1e6);
    }
    throw new ApplyError(
      `${address}: service ${c.name} did not converge within ${cc.timeout}: ${running} of ${replicas} task(s) running (${total} desired)${why}`,
      { id, name: c.name },
    );
  }

  private async removeService(entry: StateEntry<object>): Promise<void> {
    await this.docker.getService(entry.attrs.id).remove().catch(ignoreMissing);
    // Its tasks' containers go asynchronously; the network cannot go before them.
    await pollWhile(
      async () => (await this.docker.listTasks({ filters: { service: [entry.attrs.id] } }).catch(() => [])).length > 0,
      30_000,
    );
  }

  private async removeContainer(entry: StateEntry<ContainerConfig>): Promise<void> {
    const container = this.docker.getContainer(entry.attrs.id);
    const grace = entry.config.destroy_grace_seconds ?? entry.config.stop_timeout ?? 10;
    await container.stop({ t: grace }).catch(ignoreMissing);
    await container.remove({ force: true }).catch(ignoreMissing);
  }

  /** An overlay's last endpoints (a removed service's tasks) may take a moment to go. */
  private async removeNetwork(entry: StateEntry<object>): Promise<void> {
    for (let attempt = 0; ; attempt++) {
      try {
        await this.docker.getNetwork(entry.attrs.id).remove();
        // A swarm manager accepts the removal of an overlay still in use and finishes it once
        // the last task has left: gone means gone.
        const exists = () =>
          this.docker
            .getNetwork(entry.attrs.id)
            .inspect()
            .then(
              () => true,
              () => false,
            );
        await pollWhile(exists, 30_000);
        return;
      } catch (error) {
        if ((error as { statusCode?: number }).statusCode === 404) return;
        if (attempt >= 40) throw error;
        await sleep(POLL_MS);
      }
    }
  }
}

const POLL_MS = 250;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Checks every POLL_MS while `busy` says so, for at most `timeoutMs`. */
async function pollWhile(busy: () => Promise<boolean>, timeoutMs: number): Promise<void> {
  for (const end = Date.now() + timeoutMs; Date.now() < end && (await busy()); ) await sleep(POLL_MS);
}

/** What the Engine API says of a node and a task, as far as converging reads it (dockerode types neither). */
interface SwarmNode {
  Status?: { State?: string };
  Spec?: { Availability?: string };
}
interface SwarmTask {
  DesiredState?: string;
  Status?: { State?: string; Err?: string; Message?: string; Timestamp?: string };
}
/** One line of an image build's progress. */
interface BuildEvent {
  stream?: string;
  error?: string;
  errorDetail?: { message: string };
}

/** The newest task failure, as the provider shows it: what a user needs to see why tasks do not run. */
function lastTaskError(tasks: SwarmTask[]): string {
  const failed = tasks
    .filter((t) => t.Status?.Err || (t.Status?.State && t.Status.State !== 'running'))
    .sort((a, b) => (b.Status?.Timestamp ?? '').localeCompare(a.Status?.Timestamp ?? ''))[0];
  if (!failed?.Status) return '';
  return `; last task ${failed.Status.State}: ${failed.Status.Err || failed.Status.Message || 'no message'}`;
}

function ignoreMissing(error: { statusCode?: number }): void {
  // 304: already stopped; 404: already gone.
  if (error.statusCode !== 404 && error.statusCode !== 304) throw error;
}

function stripMeta(config: RawConfig): RawConfig {
  const { '//': _meta, depends_on: _d, lifecycle, ...rest } = config;
  return lifecycle ? { ...rest, lifecycle: { postcondition: lifecycle.postcondition } } : rest;
}

function runLocalExec(address: string, body: LocalExec): Promise<void> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn('/bin/sh', ['-c', body.command], {
      env: { ...process.env, ...body.environment },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout.on('data', (d) => (output += d));
    child.stderr.on('data', (d) => (output += d));
    child.on('exit', (code) =>
      code === 0 ? resolvePromise() : reject(new ApplyError(`${address}: local-exec failed (${code}): ${output.trim()}`)),
    );
  });
}

function topoSort(nodes: string[], deps: (n: string) => string[]): string[] {
  const out: string[] = [];
  const state = new Map<string, 'visiting' | 'done'>();
  const visit = (n: string, path: string[]) => {
    if (state.get(n) === 'done') return;
    if (state.get(n) === 'visiting') throw new UnsupportedError(`dependency cycle: ${[...path, n].join(' → ')}`);
    state.set(n, 'visiting');
    for (const d of deps(n)) {
      if (!nodes.includes(d)) throw new UnsupportedError(`${n} depends on ${d}, which is not in the configuration`);
      visit(d, [...path, n]);
    }
    state.set(n, 'done');
    out.push(n);
  };
  for (const n of [...nodes].sort()) visit(n, []);
  return out;
}
