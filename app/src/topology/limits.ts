/**
 * The machine's limits the topology sizes processes by. Apart from the schema so that a load
 * process can read them without building the topology's schemas (zod) at start.
 */

/**
 * The per-process open-file ceiling on the machines this project is measured on (checked: even
 * root gets EPERM raising it). nginx workers, replicas and load-client processes all live under it.
 */
export const PROCESS_OPEN_FILES = 20_000;
/** Connections one process of ours (a load-client worker) is given: the ceiling less a quarter for everything else. */
export const CONNECTIONS_PER_PROCESS = (PROCESS_OPEN_FILES * 3) / 4;
