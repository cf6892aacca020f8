import type { LoadRunOptions } from '../../app/src/client/coordinator';
import type { FaultEvent } from '../../app/src/client/faults';
import { PROXY_PORTS } from '../../nginx/render';
import { timeUntilAnswering } from '../../local/ha';

/**
 * A proxy fault injected into a load run once it has run `atSeconds`, told to the run as the local
 * runner's faults are: handshakes refused while the address moves count with the fault, and the
 * failover lasts until a TLS handshake succeeds on `address` again. `act` does the damage;
 * `to` names the proxy that holds the address afterwards.
 */
export function proxyFaultAt<T>(o: {
  id: string;
  atSeconds: number;
  address: string;
  from: string;
  act: () => T | Promise<T>;
  to: () => string | undefined;
}) {
  let inject: ((e: FaultEvent) => Promise<void>) | undefined;
  let fault: Promise<{ acted: T; seconds?: number }> | undefined;
  const options: Pick<LoadRunOptions, 'faultChannel' | 'onProgress'> = {
    faultChannel: (i) => (inject = i),
    onProgress: (p) => {
      if (fault || p.elapsedSeconds < o.atSeconds) return;
      fault = (async () => {
        const event: FaultEvent = { id: o.id, kind: 'kill-proxy', cutsAll: true };
        await inject!(event);
        const since = Date.now();
        const acted = await o.act();
        const seconds = await timeUntilAnswering(o.address, PROXY_PORTS.https, { since });
        const to = o.to();
        await inject!({
          ...event,
          over: true,
          failover: { from: o.from, ...(to ? { to } : {}), ...(seconds !== undefined ? { seconds } : {}) },
        });
        return { acted, seconds };
      })();
    },
  };
  return {
    options,
    /** What the fault did, once it is over; rejects if the run ended before it came. */
    done: () => fault ?? Promise.reject(new Error(`${o.id}: the run ended before ${o.atSeconds} s`)),
  };
}
