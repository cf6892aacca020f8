/**
 * SIGINT (Ctrl-C), SIGTERM (timeout, CI runners, supervisors) and SIGHUP (a closed terminal) all
 * end a local run the same way: the returned signal aborts, the client stops and writes its
 * report, then everything is torn down. The client runs in its own process group, so it hears
 * this once, from the runner.
 */
export function stopOnSignals(): AbortSignal {
  const stopping = new AbortController();
  const onSignal = (signal: NodeJS.Signals) => {
    if (stopping.signal.aborted) return;
    console.error(`\n${signal}: stopping the run`);
    stopping.abort();
  };
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.on(signal, onSignal);
  // npm does not pass SIGTERM on to its script: it exits and leaves it running. So the launcher
  // going away (we are re-parented) stops the run too, like a hangup.
  const launcher = process.ppid;
  setInterval(() => process.ppid !== launcher && onSignal('SIGHUP'), 500).unref();
  return stopping.signal;
}
