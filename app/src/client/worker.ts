/** A load worker process: runs its share of the virtual users and reports snapshots over IPC. */
import { toIpc, type WorkerReply, type WorkerRequest } from './coordinator';
import { EXIT } from '../shared/exit';
import { Runner } from './runner';

const abort = new AbortController();
const reply = (m: WorkerReply, then: () => void = () => undefined) => process.send?.(m, then);

let runner: Runner | undefined;

process.on('message', (m: WorkerRequest) => {
  if (m.type === 'stop') return abort.abort();
  if (m.type === 'fault') {
    runner?.addFault(m.event);
    return reply({ type: 'fault-ack', id: m.event.id });
  }
  const { ca, ...rest } = m.options;
  runner = new Runner({ ...rest, ca: ca ? Buffer.from(ca, 'base64') : undefined });
  runner
    .run((snapshot) => !snapshot.done && reply({ type: 'tick', snapshot: toIpc(snapshot) }), abort.signal)
    .then((snapshot) => reply({ type: 'final', snapshot: toIpc(snapshot) }, () => process.exit(EXIT.ok)))
    .catch((error: Error) => reply({ type: 'error', message: error.stack ?? error.message }, () => process.exit(EXIT.failed)));
});
// The coordinator handles Ctrl-C; a worker only stops when told (or when its parent goes away).
process.on('SIGINT', () => undefined);
process.on('disconnect', () => abort.abort());
