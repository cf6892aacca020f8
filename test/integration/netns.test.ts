import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { describe, it } from 'node:test';
import { createLab, inNamespace, reapDeadLabs } from '../../local/netns';
import { commandOutput } from '../helpers/tools';

const netnsList = () => spawnSync('ip', ['netns', 'list'], { encoding: 'utf8' }).stdout;
const linkExists = (name: string) => spawnSync('ip', ['link', 'show', name]).status === 0;
const forwardRule = (bridge: string) => {
  commandOutput('iptables', ['-V'], 'iptables');
  return spawnSync('iptables', ['-C', 'FORWARD', '-i', bridge, '-o', bridge, '-j', 'ACCEPT']).status === 0;
};

/** A line from a TCP server at host:port, connecting from inside `namespace` (or the host). */
function fetchLine(host: string, port: number, namespace?: string): string {
  const code = `const s=require('net').connect(${port},'${host}');let d='';s.on('data',b=>d+=b);s.on('end',()=>{process.stdout.write(d)});s.on('error',e=>{process.stdout.write('error '+e.code)})`;
  const argv = [process.execPath, '-e', code];
  const [command, ...args] = namespace ? inNamespace(namespace, argv) : argv;
  return spawnSync(command, args, { encoding: 'utf8', timeout: 5_000 }).stdout;
}

describe('network namespaces for the local HA pair (root, real ip/iptables)', () => {
  it('joins namespaces and the host on a bridge with 198.18.0.0/24 addresses, and takes all of it down again', async (t) => {
    const lab = createLab(['proxy-0', 'client']);
    t.after(() => lab.teardown());
    const { 'proxy-0': proxy, client } = lab.namespaces;
    assert.deepEqual([proxy.address, client.address, lab.hostAddress], ['198.18.0.10', '198.18.0.11', '198.18.0.1']);
    assert.match(netnsList(), new RegExp(proxy.name));
    assert.ok(linkExists(lab.bridge));
    assert.ok(forwardRule(lab.bridge), "bridged frames get past Docker's FORWARD DROP");

    // A server inside the proxy namespace, reached from the client namespace and from the host.
    const [command, ...args] = inNamespace(proxy.name, [
      process.execPath,
      '-e',
      `require('net').createServer((s)=>s.end('from ${proxy.name}')).listen(7000,'${proxy.address}',()=>console.log('up'))`,
    ]);
    const server = spawn(command, args, { stdio: ['ignore', 'pipe', 'inherit'] });
    t.after(() => server.kill());
    await new Promise<void>((r) => server.stdout.once('data', () => r()));
    assert.equal(fetchLine(proxy.address, 7000, client.name), `from ${proxy.name}`, 'namespace to namespace over the bridge');
    assert.equal(fetchLine(proxy.address, 7000), `from ${proxy.name}`, 'host to namespace');
    server.kill();

    lab.teardown();
    lab.teardown();
    assert.doesNotMatch(netnsList(), new RegExp(`${proxy.name}|${client.name}`));
    assert.ok(!linkExists(lab.bridge));
    assert.ok(!forwardRule(lab.bridge));
  });

  it('a lab whose process died is removed by the next start, and a live one is left alone', async () => {
    const dead = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], { encoding: 'utf8' });
    const deadPid = Number(dead.stdout);
    const orphan = createLab(['proxy-0'], deadPid);
    const live = createLab(['proxy-0']);
    try {
      const removed = reapDeadLabs();
      assert.ok(removed.includes(orphan.namespaces['proxy-0'].name) && removed.includes(orphan.bridge), `removed: ${removed.join(', ')}`);
      assert.ok(!linkExists(orphan.bridge) && !forwardRule(orphan.bridge));
      assert.doesNotMatch(netnsList(), new RegExp(orphan.namespaces['proxy-0'].name));
      assert.match(netnsList(), new RegExp(live.namespaces['proxy-0'].name), "a live run's lab stays");
    } finally {
      orphan.teardown();
      live.teardown();
    }
  });

  it('runs a program in a namespace under a host name of its own, its arguments intact', () => {
    const lab = createLab(['proxy-0']);
    try {
      const ns = lab.namespaces['proxy-0'];
      const [command, ...args] = inNamespace(
        ns.name,
        ['sh', '-c', 'printf "%s|" "$@"; hostname; ip -o -4 addr show dev eth0', 'sh', 'a b', "it's", '$HOME'],
        { hostname: 'ws-nginx-7' },
      );
      const out = spawnSync(command, args, { encoding: 'utf8' }).stdout;
      assert.match(out, /^a b\|it's\|\$HOME\|ws-nginx-7\n/, out);
      assert.match(out, new RegExp(`inet ${ns.address.replace(/\./g, '\\.')}/`), 'inside the lab namespace');
      assert.notEqual(spawnSync('hostname', { encoding: 'utf8' }).stdout.trim(), 'ws-nginx-7', "the host's own name is untouched");
    } finally {
      lab.teardown();
    }
  });
});
