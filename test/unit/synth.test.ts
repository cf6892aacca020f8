import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { Testing } from 'cdktf';
import { defineTopology, reloadShedDelayMs } from '../../app/src/topology';
import { RELOAD_PLAN_ENV, reloadPlanSchema } from '../../app/src/shared/control';
import { ConfigError } from '../../app/src/shared/errors';
import { WsNotificationsStack } from '../../stacks/ws-notifications-stack';
import { containerNamed, proxyConfig, resourcesOf, ROOT, synth, writtenFiles } from '../helpers/synth';
import { matchSnapshot } from '../helpers/snapshot';
import { scratchDir } from '../helpers/scratch';

const proxyConfigHash = (s: ReturnType<typeof synth>) =>
  Object.entries(s.json.resource.terraform_data).find(([id]) => id.startsWith('proxy_reload'))![1].triggers_replace.sha256;
const proxyReloadTriggers = (s: ReturnType<typeof synth>) =>
  Object.entries(s.json.resource.terraform_data).find(([id]) => id.startsWith('proxy_reload'))![1].triggers_replace;
const serverNames = (s: ReturnType<typeof synth>) =>
  resourcesOf(s, 'docker_container')
    .map((c) => c.name)
    .filter((n: string) => n.startsWith('ws-server-'))
    .sort();

describe('the synthesized stack', () => {
  const s = synth();

  it('configures the kreuzwerker/docker provider', () => {
    // (Testing.toBeValidTerraform needs `terraform init`, i.e. the provider, which cannot be downloaded here.)
    assert.ok(Testing.toHaveProvider(s.text, 'docker'));
    assert.equal(s.json.terraform.required_providers.docker.source, 'kreuzwerker/docker');
  });

  it('declares a network, two locally built images, the proxy, the fleet and the job', () => {
    assert.ok(Testing.toHaveResourceWithProperties(s.text, 'docker_network', { name: 'ws-notifications', driver: 'bridge' }));
    const images = resourcesOf(s, 'docker_image').filter((i) => i.build);
    assert.deepEqual(images.map((i) => i.name).sort(), ['ws-notifications/app:local', 'ws-notifications/nginx:local']);
    for (const image of images) {
      assert.ok(image.build[0]?.context ?? image.build.context, 'built from a local context');
      assert.match(image.triggers.source_hash, /^[0-9a-f]{64}$/, 'rebuild trigger from a source hash');
    }
    assert.deepEqual(serverNames(s), ['ws-server-0', 'ws-server-1', 'ws-server-2']);
    containerNamed(s, 'ws-nginx');
    containerNamed(s, 'ws-load-client');
  });

  it('builds from absolute contexts (terraform runs in cdktf.out/stacks/<stack>)', () => {
    for (const image of resourcesOf(s, 'docker_image').filter((i) => i.build)) {
      const build = Array.isArray(image.build) ? image.build[0] : image.build;
      assert.ok(build.context.startsWith('/'), build.context);
    }
  });

  it('containers reference the image id, so a rebuild rolls them', () => {
    for (const c of resourcesOf(s, 'docker_container')) {
      assert.match(c.image, /^\$\{docker_image\.[^.]+\.image_id\}$/, c.name);
    }
  });

  it('publishes 443 and 80 on the proxy', () => {
    const proxy = containerNamed(s, 'ws-nginx');
    assert.deepEqual(
      proxy.ports.map((p: any) => [p.internal, p.external]).sort(),
      [
        [443, 443],
        [80, 80],
      ].sort(),
    );
  });

  it('nginx binds the container ports; other public ports are only published', () => {
    const custom = synth({ proxy: { httpsPort: 18443, httpPort: 18080 } });
    const conf = proxyConfig(custom);
    assert.match(conf, /^\s*listen 443 ssl/m);
    assert.match(conf, /^\s*listen 80;/m);
    assert.match(conf, /return 301 https:\/\/\$host:18443\$request_uri;/);
    assert.deepEqual(
      containerNamed(custom, 'ws-nginx')
        .ports.map((p: any) => [p.internal, p.external])
        .sort(),
      [
        [443, 18443],
        [80, 18080],
      ].sort(),
    );
  });

  it('passes each replica its settings from the topology', () => {
    const env: string[] = containerNamed(s, 'ws-server-1').env;
    assert.ok(env.includes('WS_REPLICA_ID=ws-server-1'));
    assert.ok(env.includes('WS_PING_INTERVAL_MS=30000'));
    assert.ok(env.includes('WS_PATH=/ws-notifications'));
  });

  it('runs the load job attached, with logs, not auto-removed, with a postcondition and a re-run trigger', () => {
    const job = containerNamed(s, 'ws-load-client');
    assert.equal(job.attach, true);
    assert.equal(job.logs, true);
    assert.equal(job.must_run, false);
    assert.equal(job.rm, false);
    assert.deepEqual(
      job.lifecycle.postcondition.map((p: any) => p.condition),
      ['${self.exit_code == 0}'],
    );
    assert.match(job.lifecycle.replace_triggered_by[0], /^terraform_data\.load_run_[A-Z0-9]+$/);
    assert.equal(job.command[0], 'timeout', 'an overall time limit so the job always ends');
    assert.ok(job.env.some((e: string) => e.startsWith('LOAD_URL=wss://ws-nginx:443/ws-notifications')));
    assert.ok(job.depends_on.some((d: string) => d.startsWith('terraform_data.proxy_reload_')));
  });

  it('reloads nginx after installing a new config, and installs it only after the fleet exists', () => {
    const data = s.json.resource.terraform_data;
    const [, install] = Object.entries(data).find(([id]) => id.startsWith('proxy_config'))!;
    const [, reload] = Object.entries(data).find(([id]) => id.startsWith('proxy_reload'))!;
    assert.equal(install.depends_on.filter((d: string) => d.startsWith('docker_container.fleet_')).length, 3);
    // The reload step checks, reloads and announces the new workers to every replica (control/reload.ts).
    const exec = reload.provisioner[0]['local-exec'];
    assert.match(exec.command, /node --import tsx scripts\/proxy-reload\.ts/);
    const plan = reloadPlanSchema.parse(JSON.parse(exec.environment[RELOAD_PLAN_ENV]));
    const topology = defineTopology({});
    assert.deepEqual(plan.replicas, ['ws-server-0', 'ws-server-1', 'ws-server-2']);
    assert.equal(plan.announce.shedAfterMs, reloadShedDelayMs(topology.proxy));
    assert.equal(plan.announce.windowMs, topology.proxy.reload.shedWindowMs);
    assert.equal(plan.rebalance, undefined, 'rebalance is off by default');
    assert.equal(reload.triggers_replace.sha256, install.triggers_replace.sha256);
  });

  it('runs the broker on a volume that outlives its container, healthy before any replica starts, every replica pointed at it', () => {
    const nats = containerNamed(s, 'ws-nats');
    const [volume] = resourcesOf(s, 'docker_volume');
    assert.equal(volume.name, 'ws-nats-data');
    assert.equal(nats.volumes.length, 2, 'the store and the users');
    assert.match(
      nats.volumes[0].volume_name,
      /^\$\{docker_volume\.broker_store_[0-9A-F]+\.name\}$/,
      'the volume by reference: created first, kept across a replaced container',
    );
    assert.ok(
      nats.command.includes('--jetstream') && nats.command.includes(nats.volumes[0].container_path),
      'JetStream stores on the volume',
    );
    assert.deepEqual(
      nats.ports,
      [{ internal: 8222, external: 8222, ip: '127.0.0.1' }],
      'monitoring on loopback only; clients use the service network',
    );
    assert.match(nats.healthcheck.test.join(' '), /8222\/healthz/);
    assert.equal(nats.wait, true);
    // Closed to strangers: the users come from a secret file, never from the state or an env.
    const users = nats.volumes[1];
    assert.deepEqual([users.container_path, users.read_only], ['/etc/nats/auth.conf', true]);
    assert.match(users.host_path, /\/\.secrets\/ws-notifications\/nats-auth\.conf$/);
    assert.match(nats.command.join(' '), /^nats-server --config \/etc\/nats\/auth\.conf /);
    for (const name of serverNames(s)) {
      const replica = containerNamed(s, name);
      assert.ok(replica.env.includes('WS_BROKER_URLS=nats://ws-nats:4222'), `${name} connects to the broker`);
      assert.ok(replica.env.includes('WS_BROKER_USER=ws-replica'), `${name} as the replicas' user`);
      assert.ok(replica.env.includes('WS_BROKER_PASSWORD_FILE=/run/secrets/nats-password'), `${name} reads its password from a file`);
      assert.ok(!replica.env.some((e: string) => /PASSWORD=(?!\/)/.test(e)), 'no password in the environment');
      assert.ok(
        replica.depends_on.some((d: string) => d.startsWith('docker_container.broker_container_')),
        `${name} starts after the broker`,
      );
    }
    const without = synth({ broker: { enabled: false } });
    assert.equal(resourcesOf(without, 'docker_volume').length, 0);
    assert.ok(!resourcesOf(without, 'docker_container').some((c) => c.name === 'ws-nats'));
    assert.ok(
      !containerNamed(without, 'ws-server-0').env.some((e: string) => e.startsWith('WS_BROKER_')),
      'per-replica fan-out: no broker variables',
    );
  });

  it('refuses a broker monitoring port another published port already has, naming the field', () => {
    assert.throws(
      () => synth({ broker: { monitoringPort: 443 } }),
      (e: unknown) => e instanceof ConfigError && e.problems[0].field === 'broker.monitoringPort',
    );
  });

  it('auth.mode jwt without a provider (the default): the ws-idp container, replicas after it, the load job with tokens from it', () => {
    const jwt = s;
    const open = synth({ auth: { mode: 'none' }, server: { clientPublish: true } as any });
    assert.throws(() => containerNamed(open, 'ws-idp'), /no container named ws-idp/, 'no IdP with auth off');
    for (const name of serverNames(open)) assert.ok(containerNamed(open, name).env.includes('WS_CLIENT_PUBLISH=true'));
    const idp = containerNamed(jwt, 'ws-idp');
    assert.deepEqual(idp.command, ['node', 'dist/idp/main.js']);
    assert.ok(idp.env.includes('WS_IDP_ISSUER=http://ws-idp:8090'), idp.env.join(' '));
    assert.deepEqual(idp.ports ?? [], [], 'no host port');
    assert.match(idp.volumes[0].host_path, /\/\.secrets\/ws-notifications\/idp-secret$/);
    for (const name of serverNames(jwt)) {
      const replica = containerNamed(jwt, name);
      assert.ok(replica.env.includes('WS_AUTH_ISSUER=http://ws-idp:8090'), `${name} trusts ws-idp`);
      assert.ok(
        replica.depends_on.some((d: string) => d.startsWith('docker_container.idp_container_')),
        `${name} starts after ws-idp`,
      );
    }
    const job = containerNamed(jwt, 'ws-load-client');
    const profile = JSON.parse(job.env.find((e: string) => e.startsWith('LOAD_PROFILE=')).slice('LOAD_PROFILE='.length));
    assert.deepEqual(profile.tokens, {
      issuer: 'http://ws-idp:8090',
      secretFile: '/run/secrets/idp-secret',
      ttlMs: 600_000,
      via: 'header',
    });
    assert.ok(job.volumes.some((v: any) => v.container_path === '/run/secrets/idp-secret' && v.read_only));
    // The page signs people in through the proxy: its origins are the IdP's redirect targets, and
    // nginx passes DEV_IDP.proxyPath to ws-idp on the page's own origin (nothing else in the CSP).
    assert.ok(idp.env.includes('WS_IDP_PAGE_ORIGINS=https://localhost,https://127.0.0.1'), idp.env.join(' '));
    const conf = proxyConfig(jwt);
    assert.match(conf, /location \^~ \/idp\/ \{\s+proxy_pass http:\/\/ws-idp:8090;/);
    assert.match(conf, /proxy_set_header X-Forwarded-Proto https;/);
    assert.match(conf, /"via":"\/idp"/, 'the page reaches the provider there');
    assert.match(conf, /connect-src 'self';/);
    assert.doesNotMatch(proxyConfig(open), /\/idp\//, 'no IdP path with auth off');
    const own = proxyConfig(synth({ auth: { mode: 'jwt', issuer: 'https://idp.example/realms/x' } }));
    assert.doesNotMatch(own, /ws-idp/, 'nor with a provider of its own');
    assert.match(own, /connect-src 'self' https:\/\/idp\.example;/);
  });

  it('mounts the publish API key into each replica, and into the load job when it publishes through the API', () => {
    const keyFile = 'secrets/api.key';
    const s = synth({
      auth: { mode: 'none' },
      server: { apiKeyFile: keyFile } as any,
      proxy: { publishApi: true } as any,
      load: { publishApi: { keyFile } } as any,
    });
    const mount = { host_path: join(ROOT, keyFile), container_path: '/run/secrets/api-key', read_only: true };
    for (const name of serverNames(s)) {
      const replica = containerNamed(s, name);
      assert.ok(replica.env.includes('WS_API_KEY_FILE=/run/secrets/api-key'), replica.env.join(' '));
      assert.ok(
        replica.volumes.some((v: any) => v.host_path === mount.host_path && v.container_path === mount.container_path && v.read_only),
        `${name} mounts the key`,
      );
    }
    const job = containerNamed(s, 'ws-load-client');
    const profile = JSON.parse(job.env.find((e: string) => e.startsWith('LOAD_PROFILE=')).slice('LOAD_PROFILE='.length));
    assert.deepEqual(profile.publishApi, { keyFile: '/run/secrets/api-key' });
    assert.ok(job.volumes.some((v: any) => v.host_path === mount.host_path && v.container_path === mount.container_path && v.read_only));
    const plain = synth();
    assert.ok(!containerNamed(plain, 'ws-server-0').env.some((e: string) => e.startsWith('WS_API_KEY_FILE=')), 'no key, no API');
  });

  it('a rebalance runs after the reload only when the topology enables it', () => {
    const on = synth({ proxy: { rebalance: { enabled: true } } });
    const [, reload] = Object.entries(on.json.resource.terraform_data).find(([id]) => id.startsWith('proxy_reload'))!;
    const plan = reloadPlanSchema.parse(JSON.parse(reload.provisioner[0]['local-exec'].environment[RELOAD_PLAN_ENV]));
    assert.equal(plan.rebalance?.enabled, true);
    assert.notEqual(reload.triggers_replace.plan, proxyReloadTriggers(s).plan, 'turning it on re-runs the step');
  });
});

describe('the replica count', () => {
  for (const n of [1, 3, 10]) {
    it(`${n} replicas give ${n} containers and ${n} upstream entries`, () => {
      const s = synth({ replicas: n });
      assert.deepEqual(serverNames(s), Array.from({ length: n }, (_, i) => `ws-server-${i}`).sort());
      const servers = proxyConfig(s).match(/^\s*server ws-server-\d+:8080 /gm) ?? [];
      assert.equal(servers.length, n);
    });
  }

  it('proxy.ha: two proxies with keepalived beside nginx, no host ports, the load job and the exporter at the virtual address, Prometheus on both', () => {
    const s = synth({
      network: { subnet: '198.18.1.0/24', ipRange: '198.18.1.0/25' },
      proxy: { ha: { enabled: true, virtualAddress: '198.18.1.200' } },
    });
    const [first, second] = ['ws-nginx-0', 'ws-nginx-1'].map((n) => containerNamed(s, n));
    assert.ok(!resourcesOf(s, 'docker_container').some((c) => c.name === 'ws-nginx'), 'no single proxy');
    for (const p of [first, second]) {
      assert.deepEqual(p.ports ?? [], [], 'two proxies cannot publish the same host ports');
      assert.deepEqual(p.capabilities.add, ['NET_ADMIN', 'NET_RAW']);
      assert.match(p.command.join(' '), /keepalived --dont-fork .* & exec nginx -c/);
      assert.ok(
        p.volumes.some((v: any) => v.container_path === '/run/ws-ha' && !v.read_only),
        'keepalived writes its state where nginx serves it',
      );
    }
    const keepalived = (index: number) => writtenFiles(s, `proxy_keepalived-${index}`)['keepalived.conf'];
    assert.match(keepalived(0), /priority 150/);
    assert.match(keepalived(1), /priority 100/);
    const conf = proxyConfig(s);
    assert.match(conf, /ssl_session_ticket_key \/etc\/nginx\/certs\/ticket\.key;/, 'both proxies resume the same sessions');
    assert.match(conf, /allow 198\.18\.1\.0\/24;/, 'the service network may read stub_status');
    assert.match(conf, /location = \/vrrp_metrics/);
    const image = resourcesOf(s, 'docker_image').find((i) => i.name === 'ws-notifications/nginx:local')!;
    assert.equal(image.build[0]?.build_args?.WITH_KEEPALIVED ?? image.build.build_args.WITH_KEEPALIVED, '1');
    const job = containerNamed(s, 'ws-load-client');
    assert.ok(job.env.includes('LOAD_URL=wss://198.18.1.200:443/ws-notifications'), job.env.join(' '));
    assert.match(containerNamed(s, 'ws-nginx-exporter').command.join(' '), /http:\/\/198\.18\.1\.200:80\/nginx_status/);
    const plan = reloadPlanSchema.parse(
      JSON.parse(
        resourcesOf(s, 'terraform_data').find((r) => r.provisioner?.[0]?.['local-exec']?.environment?.[RELOAD_PLAN_ENV])!.provisioner[0][
          'local-exec'
        ].environment[RELOAD_PLAN_ENV],
      ),
    );
    assert.deepEqual(plan.proxies, ['ws-nginx-0', 'ws-nginx-1'], 'a scale reloads both proxies');
    const prometheus = writtenFiles(s, 'monitoring_prometheus')['prometheus.yml'];
    assert.match(prometheus, /job_name: nginx-vrrp\n\s+metrics_path: \/vrrp_metrics/);
    assert.match(prometheus, /ws-nginx-0:80[\s\S]*ws-nginx-1:80/);
  });

  it('REPLICAS in the environment overrides the code', () => {
    assert.equal(serverNames(synth({ replicas: 3 }, { REPLICAS: '5' })).length, 5);
  });

  it('changing N leaves the proxy container untouched, so open WebSockets survive a scale', () => {
    const proxies = [1, 3, 10].map((n) => containerNamed(synth({ replicas: n }), 'ws-nginx'));
    assert.deepEqual(proxies[0], proxies[1]);
    assert.deepEqual(proxies[1], proxies[2]);
    // ...while the config (and so the reload trigger) does change.
    const hashes = new Set([1, 3].map((n) => proxyConfigHash(synth({ replicas: n }))));
    assert.equal(hashes.size, 2);
  });

  it('keeps resource ids stable per index, so scaling down removes only the highest', () => {
    const ids = (n: number) =>
      Object.keys(synth({ replicas: n }).json.resource.docker_container)
        .filter((id) => id.startsWith('fleet_'))
        .sort();
    const five = ids(5);
    const two = ids(2);
    assert.deepEqual(
      two,
      five.filter((id) => /ws-server-[01]_/.test(id)),
    );
  });
});

describe('private keys never reach the synthesized output', () => {
  it('mounts the real key read-only instead of uploading it', () => {
    const dir = scratchDir('ws-certs-');
    execFileSync('openssl', ['ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', join(dir, 'server.key')]);
    const keyBody = readFileSync(join(dir, 'server.key'), 'utf8')
      .split('\n')
      .filter((l) => l && !l.startsWith('-----'))
      .join('');
    assert.ok(keyBody.length > 40);

    const topology = defineTopology({ tls: { dir } });
    const outdir = scratchDir('ws-out-');
    const app = Testing.app({ outdir });
    new WsNotificationsStack(app, topology.name, { topology, root: ROOT });
    app.synth();

    const files: string[] = [];
    const walk = (p: string): void => {
      if (statSync(p).isDirectory()) readdirSync(p).forEach((n) => walk(join(p, n)));
      else files.push(p);
    };
    walk(outdir);
    assert.ok(
      files.some((f) => f.endsWith('cdk.tf.json')),
      'synth wrote the stack',
    );
    for (const file of files) {
      const text = readFileSync(file, 'utf8');
      assert.ok(!text.includes('PRIVATE KEY'), `${file} holds PEM key material`);
      assert.ok(!text.includes(keyBody.slice(0, 40)), `${file} holds the key`);
    }
    const proxy = Object.values(
      JSON.parse(readFileSync(files.find((f) => f.endsWith('cdk.tf.json'))!, 'utf8')).resource.docker_container,
    ).find((c: any) => c.name === 'ws-nginx') as any;
    assert.ok(proxy.volumes.some((v: any) => v.host_path === dir && v.read_only === true));
    assert.equal(proxy.upload, undefined, 'no upload (its content would land in state)');
  });
});

describe('snapshot', () => {
  const normalized = (text: string) =>
    JSON.stringify(JSON.parse(text), null, 2)
      .split(ROOT)
      .join('<root>')
      .replace(/[0-9a-f]{64}/g, '<sha256>');
  it('matches the stored synthesized JSON', () => {
    matchSnapshot('stack.default.json', `${normalized(synth().text)}\n`);
  });
  it('matches the stored synthesized JSON with the HA pair and the rebalance', () => {
    const s = synth({
      network: { subnet: '198.18.0.0/24', ipRange: '198.18.0.128/25' },
      proxy: { ha: { enabled: true, virtualAddress: '198.18.0.10' }, rebalance: { enabled: true } } as any,
    });
    matchSnapshot('stack.ha.json', `${normalized(s.text)}\n`);
  });
});
