import type Docker from 'dockerode';

/** How a one-shot swarm service's task (the load-client job) ended. */
export interface JobOutcome {
  /** The task's final state: complete, failed, rejected, shutdown. */
  readonly state: string;
  readonly exitCode?: number;
  /** The node it ran on. */
  readonly node: string;
  readonly message?: string;
}

const ENDED = ['complete', 'failed', 'rejected', 'shutdown', 'orphaned'];

/**
 * Waits for a one-shot service's newest task to end (Swarm has no exit code an apply could wait
 * on). Throws naming the service if none ends within `timeoutMs`.
 */
export async function waitForJob(
  manager: Docker,
  service: string,
  timeoutMs: number,
  onWait?: (state: string) => void,
): Promise<JobOutcome> {
  const end = Date.now() + timeoutMs;
  let last = 'no task yet';
  while (Date.now() < end) {
    const tasks = (await manager.listTasks({ filters: { service: [service] } })) as Array<{
      CreatedAt: string;
      NodeID: string;
      Status: { State: string; Message?: string; Err?: string; ContainerStatus?: { ExitCode?: number } };
    }>;
    const newest = tasks.sort((a, b) => b.CreatedAt.localeCompare(a.CreatedAt))[0];
    if (newest) {
      const { State, ContainerStatus, Err, Message } = newest.Status;
      if (State !== last) onWait?.(State);
      last = State;
      if (ENDED.includes(State)) return { state: State, exitCode: ContainerStatus?.ExitCode, node: newest.NodeID, message: Err ?? Message };
    }
    await new Promise((r) => setTimeout(r, 1000));
  }
  throw new Error(`${service}: its task did not end within ${Math.round(timeoutMs / 1000)} s (last state: ${last})`);
}
