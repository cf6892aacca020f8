import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { Testing } from 'cdktf';
import { defineTopology, fromBrokerEnv, streamReplicas, toBrokerEnv, type TopologyInput } from '../../app/src/topology';
import { ConfigError } from '../../app/src/shared/errors';
import { ensureTopologyCertificates } from '../../certs/generate';
import { ensureServiceSecrets } from '../../certs/secrets';
import { projectPaths } from '../../stacks/paths';
import { WsNotificationsSwarmStack } from '../../stacks/swarm/swarm-stack';
import { renderFollowScript } from '../../nginx/follow-tasks';
import { announcementTiming } from '../../control/reload';
import { scratchDir } from '../helpers/scratch';

/** Asserts the input is refused naming `field`, its rule matching `rule`. */
function refused(input: Partial<TopologyInput>, field: string, rule: RegExp) {
  assert.throws(
    () => defineTopology(input),
    (e: unknown) => {
      assert.ok(e instanceof ConfigError, `expected a ConfigError, got ${e}`);
      const problem = e.problems.find((p) => p.field === field);
      assert.ok(problem, `expected a problem on ${field}, got: ${e.message}`);
      assert.match(problem.rule, rule);
      return true;
    },
  );
}

const defaultRoot = scratchDir('ws-swarm-synth-');

/** The swarm runs no development IdP: a provider of the user's own (never contacted by these tests). */
const OWN_IDP = { mode: 'jwt', issuer: 'https://idp.example.test/realms/ws' } as const;

function synth(input: Partial<TopologyInput> = {}, root = defaultRoot) {
  const topology = defineTopology({
    replicas: 4,
    target: 'swarm',
    swarm: { publicNames: ['203.0.113.7', 'ws.example.test'] },
    auth: OWN_IDP,
    ...input,
  });
  ensureTopologyCertificates(topology, root);
  ensureServiceSecrets(topology, projectPaths(root, topology).secretsDir);
  const stack = new WsNotificationsSwarmStack(Testing.app({ outdir: scratchDir('ws-synth-') }), 'swarm', { topology, root });
  const json = JSON.parse(Testing.synth(stack));
  const certificate = join(root, topology.tls.dir, topology.tls.serverCert);
  const services = Object.values(json.resource.docker_service as Record<string, any>);
  const service = (name: string) => services.find((s) => s.name === name)!;
  return { topology, json, services, service, certificate };
}

describe('the swarm target in the topology', () => {
  it('is off by default: the engine target, one copy of the stream', () => {
    const t = defineTopology({});
    assert.equal(t.target, 'engine');
    assert.equal(streamReplicas(t), 1);
    assert.equal(toBrokerEnv(t).WS_BROKER_STREAM_REPLICAS, '1');
  });

  it("keeps the stream on three servers of the swarm's cluster, and the replicas read that back", () => {
    const t = defineTopology({ target: 'swarm', auth: OWN_IDP });
    assert.equal(streamReplicas(t), 3);
    assert.equal(fromBrokerEnv(toBrokerEnv(t))?.streamReplicas, 3);
  });

  it('refuses what the target cannot do, naming the field', () => {
    refused(
      { target: 'swarm', proxy: { ha: { enabled: true, virtualAddress: '10.1.0.200' } } as any },
      'swarm.nodeSubnet',
      /is required with proxy.ha.enabled/,
    );
    refused(
      {
        target: 'swarm',
        proxy: { ha: { enabled: true, virtualAddress: '10.2.0.200' } } as any,
        swarm: { nodeSubnet: '10.1.0.0/24' } as any,
      },
      'proxy.ha.virtualAddress',
      /outside swarm\.nodeSubnet/,
    );
    refused(
      {
        target: 'swarm',
        proxy: { ha: { enabled: true, virtualAddress: '10.1.0.5' } } as any,
        swarm: { nodeSubnet: '10.1.0.0/24', publicNames: ['10.1.0.5'] } as any,
      },
      'proxy.ha.virtualAddress',
      /a node's own address/,
    );
    refused({ target: 'swarm', network: { name: 'n', subnet: '198.18.0.0/24' } }, 'network.subnet', /Swarm allocates/);
    refused({ target: 'swarm', swarm: { brokerNodes: 4 } as any }, 'swarm.brokerNodes', /must be odd/);
    refused({ target: 'swarm', auth: OWN_IDP, server: { apiKeyFile: 'k' } as any }, 'server.apiKeyFile', /does not pass the key file/);
    refused({ target: 'swarm', broker: { streamReplicas: 5 } as any }, 'broker.streamReplicas', /runs 3 \(swarm.brokerNodes\)/);
    refused({ broker: { streamReplicas: 2 } as any }, 'broker.streamReplicas', /the engine target runs 1/);
  });
});

describe('the synthesized swarm stack', () => {
  const s = synth();

  it('is services on an attachable overlay, with no container, volume, image build or bind-mounted config', () => {
    assert.deepEqual(Object.keys(s.json.resource).sort(), ['docker_config', 'docker_network', 'docker_secret', 'docker_service']);
    const [network] = Object.values(s.json.resource.docker_network as Record<string, any>);
    assert.deepEqual([network.driver, network.attachable], ['overlay', true]);
    assert.deepEqual(s.services.map((x) => x.name).sort(), ['ws-load-client', 'ws-nats', 'ws-nginx', 'ws-prometheus', 'ws-server']);
    // Every service is reached by its tasks' addresses: no virtual IP, no ingress mesh.
    for (const service of s.services) assert.equal(service.endpoint_spec.mode, 'dnsrr', service.name);
    const binds = s.services.flatMap((x) => x.task_spec.container_spec.mounts ?? []);
    assert.deepEqual(
      binds.map((m: any) => m.target),
      ['/reports'],
      "only the job's report is a bind mount",
    );
  });

  it('takes the replica count from the topology, and rolls out one drained task at a time with rollback', () => {
    const servers = s.service('ws-server');
    assert.equal(servers.mode.replicated.replicas, 4);
    assert.deepEqual(servers.update_config, {
      delay: '0s',
      failure_action: 'rollback',
      monitor: '20s',
      order: 'stop-first',
      parallelism: 1,
    });
    assert.equal(servers.task_spec.container_spec.env.WS_REPLICA_ID, 'ws-server-{{.Task.Slot}}');
    assert.equal(servers.task_spec.container_spec.stop_grace_period, '20s');
  });

  it('runs the proxy on every node, published in host mode, its key a secret and its config a config', () => {
    const proxy = s.service('ws-nginx');
    assert.deepEqual(proxy.mode, { global: true });
    assert.deepEqual(
      proxy.endpoint_spec.ports.map((p: any) => [p.published_port, p.target_port, p.publish_mode]),
      [
        [443, 443, 'host'],
        [80, 80, 'host'],
      ],
    );
    const spec = proxy.task_spec.container_spec;
    assert.deepEqual(
      spec.secrets.map((x: any) => x.file_name),
      ['/run/secrets/server.key', '/run/secrets/control.key'],
    );
    assert.deepEqual(
      spec.configs.map((x: any) => x.file_name),
      [
        '/etc/nginx/ws/nginx.conf',
        '/etc/nginx/ws/follow-tasks.sh',
        '/etc/nginx/certs/server.crt',
        '/etc/nginx/page/index.html',
        '/etc/nginx/page/app.js',
      ],
      'the page ships as configs too',
    );
    // The servers get the control key the proxies' followers send, as the same secret.
    const servers = s.service('ws-server').task_spec.container_spec;
    assert.deepEqual(
      servers.secrets.map((x: any) => x.file_name),
      ['/run/secrets/control.key', '/run/secrets/nats-password'],
    );
    assert.equal(servers.secrets[0].secret_name, spec.secrets[1].secret_name);
    assert.equal(servers.env.WS_CONTROL_KEY_FILE, '/run/secrets/control.key');
    // The broker is closed to strangers: its users a secret of its tasks, the replicas' password a secret of theirs.
    assert.deepEqual([servers.env.WS_BROKER_USER, servers.env.WS_BROKER_PASSWORD_FILE], ['ws-replica', '/run/secrets/nats-password']);
    assert.deepEqual([servers.secrets[1].file_uid, servers.secrets[1].file_mode], ['1000', 0o400]);
    const nats = s.service('ws-nats').task_spec.container_spec;
    assert.deepEqual(
      nats.secrets.map((x: any) => x.file_name),
      ['/etc/nats/auth.conf'],
    );
    assert.match(nats.command.join(' '), /--config \/etc\/nats\/auth\.conf/);
    assert.ok(!JSON.stringify(s.json.resource.docker_service).includes('password:'), 'no password in a service');
    // Readable by the servers' user only (they do not run as root); the proxies' copy stays root's.
    assert.deepEqual([servers.secrets[0].file_uid, servers.secrets[0].file_mode], ['1000', 0o400]);
    assert.equal(spec.secrets[1].file_uid, undefined);
    // The key's bytes are in the secret only: never in a config.
    const configs = Object.values(s.json.resource.docker_config as Record<string, any>).map((c) =>
      Buffer.from(c.data, 'base64').toString(),
    );
    assert.ok(!configs.some((c) => c.includes('PRIVATE KEY')));
    const conf = configs.find((c) => c.includes('upstream ws_servers'))!;
    assert.match(conf, /server tasks\.ws-server:8080 max_fails/);
    assert.match(conf, /every task of ws-server, resolved at each \(re\)load/);
  });

  it('names configs by their content, so a change makes a new one (created before the old goes)', () => {
    const names = (x: ReturnType<typeof synth>) =>
      Object.values(x.json.resource.docker_config as Record<string, any>)
        .map((c) => c.name)
        .sort();
    const other = synth({ replicas: 2 });
    assert.deepEqual(names(other), names(s), 'the replica count changes no config');
    const changed = synth({ proxy: { readTimeoutMs: 120_000 } as any });
    assert.notDeepEqual(names(changed), names(s));
    for (const c of Object.values(s.json.resource.docker_config as Record<string, any>))
      assert.equal(c.lifecycle.create_before_destroy, true);
  });

  it('spreads the NATS cluster one server per node, each named from its slot, routes found by DNS', () => {
    const nats = s.service('ws-nats');
    assert.equal(nats.mode.replicated.replicas, 3);
    assert.equal(nats.task_spec.placement.max_replicas, 1);
    const command = nats.task_spec.container_spec.command.join(' ');
    assert.match(command, /--routes nats-route:\/\/tasks\.ws-nats:6222/);
    assert.match(command, /--server_name "\$NATS_SERVER_NAME"/);
    assert.equal(nats.task_spec.container_spec.env.NATS_SERVER_NAME, 'ws-nats-{{.Task.Slot}}');
    assert.equal(s.service('ws-server').task_spec.container_spec.env.WS_BROKER_STREAM_REPLICAS, '3');
  });

  it("has Prometheus discover the servers' tasks by DNS, on a manager", () => {
    const prometheus = s.service('ws-prometheus');
    assert.deepEqual(prometheus.task_spec.placement.constraints, ['node.role == manager']);
    const config = Object.values(s.json.resource.docker_config as Record<string, any>)
      .map((c) => Buffer.from(c.data, 'base64').toString())
      .find((c) => c.includes('scrape_configs'))!;
    assert.match(config, /dns_sd_configs:\n\s+- names:\n\s+- tasks\.ws-server\n\s+type: A\n\s+port: 8080/);
  });

  it('runs the load job once, on a manager, against the proxies by name', () => {
    const job = s.service('ws-load-client');
    assert.deepEqual(job.task_spec.restart_policy, { condition: 'none' });
    assert.equal(job.task_spec.container_spec.env.LOAD_URL, 'wss://ws-nginx:443/ws-notifications');
    assert.deepEqual(job.task_spec.placement.constraints, ['node.role == manager']);
  });

  it('puts the names clients use on the certificate', () => {
    const text = require('node:child_process').execFileSync('openssl', ['x509', '-noout', '-ext', 'subjectAltName', '-in', s.certificate], {
      encoding: 'utf8',
    });
    assert.match(text, /DNS:ws\.example\.test/);
    assert.match(text, /IP Address:203\.0\.113\.7/);
  });
});

describe('the keepalived pair on the swarm target', () => {
  const s = synth(
    {
      proxy: { ha: { enabled: true, virtualAddress: '10.1.0.200' } } as any,
      swarm: { nodeSubnet: '10.1.0.0/24', vrrpInterface: 'ens3', vrrpPlacement: ['node.labels.edge == true'] } as any,
    },
    scratchDir('ws-swarm-ha-'),
  );
  const vrrp = s.service('ws-nginx-vrrp');

  it("runs keepalived on the nodes' own network, two tasks never on one node, where the operator allows", () => {
    assert.deepEqual(vrrp.task_spec.networks_advanced, [{ name: 'host' }]);
    assert.deepEqual(vrrp.task_spec.container_spec.cap_add, ['NET_ADMIN', 'NET_RAW']);
    assert.equal(vrrp.mode.replicated.replicas, 2);
    assert.deepEqual(vrrp.task_spec.placement, { constraints: ['node.labels.edge == true'], max_replicas: 1 });
  });

  it("gives slot N the N-th priority, the address on the nodes' interface and subnet", () => {
    const configs = Object.values(s.json.resource.docker_config as Record<string, any>).map((c) =>
      Buffer.from(c.data, 'base64').toString(),
    );
    const conf = (n: number) => configs.find((c) => c.includes('vrrp_instance') && c.includes(`router_id ws-nginx-${n - 1}`))!;
    assert.match(conf(1), /priority 150/);
    assert.match(conf(2), /priority 100/);
    assert.match(conf(1), /10\.1\.0\.200\/24 dev ens3/);
    assert.match(vrrp.task_spec.container_spec.command.join(' '), /keepalived-\$VRRP_SLOT\.conf/);
    assert.equal(vrrp.task_spec.container_spec.env.VRRP_SLOT, '{{.Task.Slot}}');
  });

  it('gives clients the virtual address, and puts it on the certificate', () => {
    assert.deepEqual(s.json.output.endpoints.value, ['wss://10.1.0.200/ws-notifications']);
    const text = require('node:child_process').execFileSync('openssl', ['x509', '-noout', '-ext', 'subjectAltName', '-in', s.certificate], {
      encoding: 'utf8',
    });
    assert.match(text, /IP Address:10\.1\.0\.200/);
  });
});

describe("the proxy's task follower (nginx/follow-tasks.ts)", () => {
  const t = defineTopology({ target: 'swarm', swarm: { followIntervalMs: 1500 }, auth: OWN_IDP });
  const script = renderFollowScript(t, {
    service: 'ws-server',
    configFile: '/etc/nginx/ws/nginx.conf',
    pidFile: '/run/nginx.pid',
    controlKeyFile: '/run/secrets/control.key',
  });

  it('resolves the tasks at the interval, checks before it reloads, and announces the reload plan', () => {
    assert.match(script, /getent ahostsv4 tasks\.ws-server/);
    assert.match(script, /while sleep 0\.5; do/);
    assert.match(script, /\[ \$\(\(tick % 3\)\) -eq 0 \]/, 'the tasks every 3 ticks of 0.5 s: 1.5 s');
    assert.ok(script.indexOf('nginx -t -q') < script.indexOf('kill -HUP'));
    const plan = announcementTiming(t.proxy);
    // shedAfterMs less the time since the reload began: nginx's deadline runs from the HUP, not from the announcement.
    assert.match(script, new RegExp(`after=\\$\\(\\( ${plan.shedAfterMs} - \\$\\{3:-0\\} \\)\\)`));
    assert.match(script, new RegExp(`"shedAfterMs\\\\":\\$after,\\\\"windowMs\\\\":${plan.windowMs}`));
    assert.ok(
      script.indexOf('kill -HUP') < script.indexOf('changed_at=$(now_ms)\n  tasks_known'),
      'the follower times its own reload from the HUP',
    );
    assert.match(script, /http:\/\/\$peer\/internal\/proxy-workers/);
    assert.match(script, /key=\$\(cat \/run\/secrets\/control\.key\)/);
    assert.match(script, /-H "authorization: Bearer \$key"/, 'every announcement carries the control key');
  });

  it('is valid POSIX shell', () => {
    const r = require('node:child_process').spawnSync('sh', ['-n'], { input: script, encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
  });
});
