import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { defineTopology, haPriorities, type TopologyInput } from '../../app/src/topology';
import { renderKeepalivedConf, VRRP_INSTANCE } from '../../keepalived/render';
import { scratchDir } from '../helpers/scratch';

const keepalived = spawnSync('keepalived', ['--version']);
assert.ok(!keepalived.error, 'keepalived must be installed for these tests (apt-get install keepalived)');

/** keepalived checks the interface exists and is not loopback: one of this machine's. */
const IFACE = readdirSync('/sys/class/net').find((n) => n !== 'lo') ?? 'eth0';

const HA: Partial<TopologyInput> = {
  network: { subnet: '198.18.0.0/24', ipRange: '198.18.0.128/25' },
  proxy: { ha: { enabled: true, virtualAddress: '198.18.0.10' } },
};

/** keepalived's own parser, on a rendered file: exit 0, or its complaints. */
function configTest(text: string): { status: number | null; output: string } {
  const dir = scratchDir('keepalived-');
  try {
    const file = join(dir, 'keepalived.conf');
    writeFileSync(file, text);
    const r = spawnSync('keepalived', ['--config-test', '-f', file], { encoding: 'utf8' });
    return { status: r.status, output: r.stdout + r.stderr };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

describe('keepalived.conf rendered from the topology (real keepalived --config-test)', () => {
  it('each proxy of the pair gets a config keepalived accepts: the same group and address, its own priority', () => {
    const topology = defineTopology(HA);
    const [first, second] = [0, 1].map((index) =>
      renderKeepalivedConf(topology, { index, interface: IFACE, checkScript: '/usr/bin/true', notifyScript: '/usr/bin/true' }),
    );
    for (const text of [first, second]) {
      const r = configTest(text);
      assert.equal(r.status, 0, r.output);
      assert.match(text, new RegExp(`vrrp_instance ${VRRP_INSTANCE} \\{`));
      assert.match(text, /virtual_router_id 51\n/);
      assert.match(text, new RegExp(`198\\.18\\.0\\.10/24 dev ${IFACE}\\n`));
      assert.match(text, /\n {4}nopreempt\n/, 'no preemption by default');
    }
    assert.deepEqual([/priority (\d+)/.exec(first)![1], /priority (\d+)/.exec(second)![1]], haPriorities(topology.proxy.ha).map(String));
    assert.match(first, /router_id ws-nginx-0/);
    assert.match(second, /router_id ws-nginx-1/);
  });

  it('follows the topology: preemption on, a faster advert, its own check timing; keepalived still accepts it', () => {
    const text = renderKeepalivedConf(
      defineTopology({
        ...HA,
        proxy: {
          ha: {
            enabled: true,
            virtualAddress: '198.18.0.10',
            preempt: true,
            advertIntervalMs: 500,
            routerId: 77,
            check: { intervalMs: 2000, fall: 3, rise: 1 },
          },
        },
      }),
      { index: 1, interface: IFACE, checkScript: '/usr/bin/true', notifyScript: '/usr/bin/true' },
    );
    assert.equal(configTest(text).status, 0, configTest(text).output);
    assert.doesNotMatch(text, /nopreempt/);
    assert.match(text, /advert_int 0\.5\n/);
    assert.match(text, /virtual_router_id 77\n/);
    assert.match(text, /interval 2\n {4}timeout 2\n {4}fall 3\n {4}rise 1\n/);
  });

  it('keepalived refuses what the renderer must never write (so the check above can fail)', () => {
    const good = renderKeepalivedConf(defineTopology(HA), {
      index: 0,
      interface: IFACE,
      checkScript: '/usr/bin/true',
      notifyScript: '/usr/bin/true',
    });
    assert.notEqual(configTest(good.replace('virtual_router_id 51', 'virtual_router_id 300')).status, 0);
  });

  it('refuses to render without HA, or for a proxy that does not exist', () => {
    assert.throws(
      () => renderKeepalivedConf(defineTopology({}), { index: 0, interface: 'eth0', checkScript: '/x', notifyScript: '/x' }),
      /not enabled/,
    );
    assert.throws(
      () => renderKeepalivedConf(defineTopology(HA), { index: 2, interface: 'eth0', checkScript: '/x', notifyScript: '/x' }),
      /not one of the 2 proxies/,
    );
  });
});
