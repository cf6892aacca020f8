import { Stats } from '../../app/src/client/stats';

/** A child process that records the RTT samples it is sent and returns its serialized stats. */
process.on('message', (samples: number[]) => {
  const stats = new Stats();
  for (const ms of samples) stats.rtt(ms, ms / 2);
  stats.counters.sent = samples.length;
  process.send!(stats.serialize(), () => process.exit(0));
});
