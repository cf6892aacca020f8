import { basename } from 'node:path';

/**
 * How a component runs, the same on every target: the engine's `docker_container`
 * (stacks/container-attributes.ts), a swarm `docker_service` (stacks/swarm/service-attributes.ts)
 * or a local process (local/processes.ts) only translate it. Paths are where the component finds
 * them: inside its container, or on this machine for a local process.
 */
export interface ComponentSpec {
  /** The program and its arguments; "$VAR" words are for a shell to expand (translators that need one say so). */
  readonly argv: readonly string[];
  /**
   * Its environment.
   * @default none
   */
  readonly env?: Readonly<Record<string, string>>;
  /**
   * Files it reads, rendered.
   * @default none
   */
  readonly files?: readonly ComponentFile[];
  /**
   * The ports it listens on, by name.
   * @default none
   */
  readonly ports?: Readonly<Record<string, number>>;
  /**
   * What says it is up and well (a container's check; the local runner waits for its port instead).
   * @default none
   */
  readonly health?: HttpHealth | CommandHealth;
  /**
   * The image runs argv[0] itself (its entrypoint): a container is given only the arguments.
   * @default false
   */
  readonly imageEntrypoint?: boolean;
  /**
   * How it is stopped: the signal, then the grace before it is killed.
   * @default the target's (SIGTERM, then 10 s)
   */
  readonly stop?: { readonly signal: 'SIGTERM' | 'SIGQUIT'; readonly graceMs: number };
  /**
   * Kernel capabilities beyond a container's defaults.
   * @default none
   */
  readonly capabilities?: readonly string[];
  /**
   * Kernel settings of its own network namespace (a container's; a local process has the host's).
   * @default none
   */
  readonly sysctls?: Readonly<Record<string, string>>;
  /**
   * Its open-file limit (soft and hard).
   * @default the target's
   */
  readonly openFiles?: number;
}

export interface ComponentFile {
  /** Where the component reads it. */
  readonly path: string;
  readonly content: string;
  /**
   * Its mode.
   * @default 0o444
   */
  readonly mode?: number;
}

interface HealthTiming {
  /** How long a slow start is forgiven. */
  readonly startPeriodMs: number;
  /** Failed checks in a row before it counts as unhealthy. */
  readonly retries: number;
}

/** An HTTP GET from beside the component that must answer 2xx. */
export interface HttpHealth extends HealthTiming {
  readonly url: string;
  /** The tool its image has to ask with: `node` (the app image has no wget) or `wget`. */
  readonly probe: 'node' | 'wget';
}

/** A shell command beside the component that must exit 0. */
export interface CommandHealth extends HealthTiming {
  readonly command: string;
}

/** A spec's files by file name, for a target that gives them to the component as one directory. */
export function filesByName(spec: ComponentSpec): Record<string, string> {
  return Object.fromEntries((spec.files ?? []).map((f) => [basename(f.path), f.content]));
}

/** The spec with another stop grace, when one is given (a construct prop that overrides it); the signal stays. */
export function withStopGrace(spec: ComponentSpec, graceMs: number | undefined): ComponentSpec {
  if (graceMs === undefined) return spec;
  return { ...spec, stop: { signal: spec.stop?.signal ?? 'SIGTERM', graceMs } };
}
