import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { natsServerArgv } from '../../components/broker';
import { nginxArgv } from '../../components/proxy';
import { shellLine } from '../../components/shell';
import { keepalivedArgv } from '../../components/vrrp';
import { freePort, start, stop, waitForPort } from '../../local/processes';
import { scratchDir } from '../helpers/scratch';

describe('component launch lines', () => {
  it('as one sh -c line: words with blanks or ; are quoted, a $VAR for the shell is not', () => {
    assert.equal(shellLine(nginxArgv({ config: '/etc/nginx/ws/nginx.conf' })), "nginx -c /etc/nginx/ws/nginx.conf -g 'daemon off;'");
    assert.equal(shellLine(['echo', "it's here"]), `echo 'it'\\''s here'`);
    assert.equal(
      shellLine(keepalivedArgv({ config: '/k/keepalived-$VRRP_SLOT.conf', pidFile: '/run/k.pid', vrrpPidFile: '/run/v.pid' })),
      'keepalived --dont-fork --log-console --log-detail --vrrp --use-file /k/keepalived-$VRRP_SLOT.conf --pid /run/k.pid --vrrp_pid /run/v.pid',
    );
  });

  it("the local broker's nats-server flags start the real nats-server on loopback", async (t) => {
    const port = await freePort();
    const [command, ...args] = natsServerArgv({
      store: scratchDir('ws-nats-argv-'),
      port,
      address: '127.0.0.1',
      monitoringPort: await freePort(),
      serverName: 'argv',
    });
    const nats = start('nats-server', command, args);
    t.after(() => stop(nats));
    await waitForPort(port, nats);
  });
});
