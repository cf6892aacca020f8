/**
 * The synthesized document and the resources in it, as the offline applier reads them. Only the
 * keys the applier's SHAPES accept are here: `validate` refuses any other before these types are
 * relied on. Nested blocks come as an object or as a list of one, as cdktf writes them.
 */

export type Block<T> = T | readonly T[];

/** A nested block's single value. */
export function first<T>(block: Block<T> | undefined): T | undefined {
  return Array.isArray(block) ? block[0] : (block as T | undefined);
}

export interface Lifecycle {
  readonly create_before_destroy?: boolean;
  readonly replace_triggered_by?: readonly string[];
  readonly postcondition?: readonly { readonly condition: string; readonly error_message: string }[];
}

/** A resource's configuration as the document has it: references still unresolved. */
export interface RawConfig {
  readonly [key: string]: unknown;
  readonly depends_on?: readonly string[];
  readonly lifecycle?: Lifecycle;
}

/** A resource's configuration with its references resolved (what the state keeps). */
export type ResolvedConfig = { readonly [key: string]: unknown; readonly lifecycle?: Lifecycle };

export interface TerraformDocument {
  readonly '//'?: unknown;
  readonly terraform?: Readonly<Record<string, unknown>>;
  readonly provider?: Readonly<Record<string, readonly object[]>>;
  readonly resource?: Readonly<Record<string, Readonly<Record<string, RawConfig>>>>;
  readonly output?: Readonly<Record<string, { readonly value: unknown }>>;
  readonly moved?: readonly { readonly from: string; readonly to: string }[];
}

/** What the applier records of a created resource (what references and postconditions read). */
export type Attrs = {
  id: string;
  name?: string;
  image_id?: string;
  mountpoint?: string;
  exit_code?: number;
  container_logs?: string;
  input?: unknown;
  output?: unknown;
};

type Labels = readonly { readonly label: string; readonly value: string }[];
type Strings = Readonly<Record<string, string>>;

export interface HealthcheckBlock {
  readonly test: readonly string[];
  readonly interval: string;
  readonly timeout: string;
  readonly start_period: string;
  readonly retries: number;
}

export interface NetworkConfig {
  readonly name: string;
  readonly driver?: string;
  readonly attachable?: boolean;
  readonly labels?: Labels;
  readonly ipam_config?: readonly { readonly subnet: string; readonly ip_range?: string }[];
}

export interface VolumeConfig {
  readonly name: string;
  readonly driver?: string;
  readonly labels?: Labels;
}

export interface ImageConfig {
  readonly name: string;
  readonly keep_locally?: boolean;
  readonly build?: Block<{
    readonly context: string;
    readonly dockerfile?: string;
    readonly build_args?: Strings;
    readonly label?: Strings;
  }>;
}

export interface LocalExec {
  readonly command: string;
  readonly environment?: Strings;
}

export interface DataConfig {
  readonly input?: unknown;
  readonly provisioner?: readonly { readonly 'local-exec': LocalExec }[];
}

/** A docker_config or docker_secret: `data` is base64 already, as the provider and the Engine API take it. */
export interface StoredFileConfig {
  readonly name: string;
  readonly data: string;
  readonly labels?: Labels;
}

export interface ContainerConfig {
  readonly name: string;
  readonly image: string;
  readonly command?: readonly string[];
  readonly env?: readonly string[];
  readonly user?: string;
  readonly labels?: Labels;
  readonly sysctls?: Strings;
  readonly restart?: string;
  readonly stop_signal?: string;
  readonly stop_timeout?: number;
  readonly destroy_grace_seconds?: number;
  readonly wait?: boolean;
  readonly wait_timeout?: number;
  readonly attach?: boolean;
  readonly logs?: boolean;
  readonly must_run?: boolean;
  readonly networks_advanced?: readonly NetworkAttachment[];
  readonly ports?: readonly { readonly internal: number; readonly external: number; readonly ip?: string }[];
  readonly volumes?: readonly {
    readonly host_path?: string;
    readonly volume_name?: string;
    readonly container_path: string;
    readonly read_only?: boolean;
  }[];
  readonly ulimit?: readonly { readonly name: string; readonly soft: number; readonly hard: number }[];
  readonly healthcheck?: Block<HealthcheckBlock>;
  readonly capabilities?: Block<{ readonly add?: readonly string[]; readonly drop?: readonly string[] }>;
}

export interface NetworkAttachment {
  readonly name: string;
  readonly aliases?: readonly string[];
}

/** A config or secret mounted as a file in a service's tasks. */
export interface MountedFile {
  readonly config_id?: string;
  readonly config_name?: string;
  readonly secret_id?: string;
  readonly secret_name?: string;
  readonly file_name: string;
  readonly file_mode?: number;
  readonly file_uid?: string;
  readonly file_gid?: string;
}

export interface ServiceContainerSpec {
  readonly image: string;
  readonly command?: readonly string[];
  readonly args?: readonly string[];
  readonly env?: Strings;
  readonly hostname?: string;
  readonly user?: string;
  readonly sysctl?: Strings;
  readonly stop_signal?: string;
  readonly stop_grace_period?: string;
  readonly cap_add?: readonly string[];
  readonly healthcheck?: Block<HealthcheckBlock>;
  readonly configs?: readonly MountedFile[];
  readonly secrets?: readonly MountedFile[];
  readonly mounts?: readonly { readonly type: string; readonly source: string; readonly target: string; readonly read_only?: boolean }[];
}

export interface Rollout {
  readonly parallelism?: number;
  readonly delay?: string;
  readonly failure_action?: string;
  readonly monitor?: string;
  readonly max_failure_ratio?: string | number;
  readonly order?: string;
}

export interface ServiceConfig {
  readonly name: string;
  readonly labels?: Labels;
  readonly mode?: Block<{ readonly replicated?: Block<{ readonly replicas?: number }>; readonly global?: boolean }>;
  readonly task_spec?: Block<{
    readonly container_spec?: Block<ServiceContainerSpec>;
    readonly networks_advanced?: readonly NetworkAttachment[];
    readonly restart_policy?: Block<{
      readonly condition?: string;
      readonly delay?: string;
      readonly max_attempts?: number;
      readonly window?: string;
    }>;
    readonly placement?: Block<{ readonly constraints?: readonly string[]; readonly max_replicas?: number }>;
  }>;
  readonly endpoint_spec?: Block<{
    readonly mode?: string;
    readonly ports?: readonly {
      readonly target_port: number;
      readonly published_port?: number;
      readonly publish_mode?: string;
      readonly protocol?: string;
    }[];
  }>;
  readonly update_config?: Block<Rollout>;
  readonly rollback_config?: Block<Rollout>;
  readonly converge_config?: Block<{ readonly delay?: string; readonly timeout?: string }>;
}

/** A replicated service's replica count. */
export const replicasOf = (c: ServiceConfig): number => first(first(c.mode)?.replicated)?.replicas ?? 1;
