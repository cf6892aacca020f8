import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { decide, OfflineApplier, planApply, type PlanStep } from '../infra/offline-applier/applier';
import fc from 'fast-check';
import { literal, resolve, UnsupportedError } from '../infra/offline-applier/expressions';
import type { TerraformDocument } from '../infra/offline-applier/resources';
import { terraformLiteral } from '../../stacks/config-files';
import { renderFollowScript } from '../../nginx/follow-tasks';
import { FUZZ } from '../helpers/fuzz';
import { synth } from '../helpers/synth';
import { Testing } from 'cdktf';
import { defineTopology } from '../../app/src/topology';
import { WsNotificationsSwarmStack } from '../../stacks/swarm/swarm-stack';
import { ensureTopologyCertificates } from '../../certs/generate';
import { ensureServiceSecrets } from '../../certs/secrets';
import { projectPaths } from '../../stacks/paths';
import { scratchDir } from '../helpers/scratch';

/** The whole swarm target's stack, synthesized (its certificates made in a temp root). */
function serviceDoc(): string {
  const root = scratchDir('ws-applier-swarm-');
  // The swarm runs no development IdP: a provider of the user's own (never contacted here).
  const topology = defineTopology({ replicas: 3, target: 'swarm', auth: { mode: 'jwt', issuer: 'https://idp.example.test/realms/ws' } });
  ensureTopologyCertificates(topology, root);
  ensureServiceSecrets(topology, projectPaths(root, topology).secretsDir);
  return Testing.synth(new WsNotificationsSwarmStack(Testing.app({ outdir: scratchDir('ws-synth-') }), 'swarm', { topology, root }));
}

/** The offline stand-in for the provider refuses what it does not understand, by name. */
describe('offline applier strictness', () => {
  const applier = new OfflineApplier('/nonexistent/state.json');
  const doc = () => JSON.parse(synth({ replicas: 2 }).text);
  const refuses = (mutate: (d: any) => void, message: RegExp) => {
    const d = doc();
    mutate(d);
    assert.throws(
      () => applier.validate(d),
      (e: unknown) => e instanceof UnsupportedError && message.test(e.message),
    );
  };
  const server0 = (d: any) => Object.values(d.resource.docker_container).find((c: any) => c.name === 'ws-server-0') as any;

  it('accepts everything the stack emits', () => applier.validate(doc()));
  it("reads Terraform's escapes as literal text, and refuses a template sequence that is not escaped", () => {
    // The proxy's follower script holds ${...} (shell): the stack escapes it, and it arrives whole.
    const env = (d: any) =>
      Object.values(d.resource.terraform_data as Record<string, any>).flatMap((r) =>
        (r.provisioner ?? []).map((p: any) => p['local-exec'].environment ?? {}),
      );
    const follower = env(doc())
      .flatMap((e: Record<string, string>) => Object.values(e))
      .find((v) => v.includes('follow-tasks'));
    assert.ok(follower?.includes('$${d#/proc/}'), 'escaped in the configuration');
    assert.equal(
      resolve(follower, () => undefined, 'x'),
      renderFollowScript(defineTopology({ replicas: 2 }), {
        configFile: '/etc/nginx/ws/nginx.conf',
        pidFile: '/run/nginx.pid',
        controlKeyFile: '/run/secrets/control.key',
      }),
    );
    refuses((d) => (server0(d).env = ['X=${d#/proc/}']), /unsupported expression/);
    refuses((d) => (server0(d).env = ['X=%{ if true }y%{ endif }']), /unsupported expression/);
    fc.assert(
      fc.property(fc.string(), (text) => literal(terraformLiteral(text)) === text),
      FUZZ,
    );
  });
  it('real terraform reads an escaped script as the script (an output-only configuration, no provider)', (t) => {
    const script = renderFollowScript(defineTopology({ replicas: 2 }), { configFile: '/c', pidFile: '/p', controlKeyFile: '/k' });
    const text = `${script}%{ if x }$\${y}`;
    const dir = scratchDir('ws-tf-literal-');
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    writeFileSync(join(dir, 'main.tf.json'), JSON.stringify({ output: { text: { value: terraformLiteral(text) } } }));
    const tf = (...args: string[]) => {
      const r = spawnSync('terraform', args, {
        cwd: dir,
        encoding: 'utf8',
        env: { ...process.env, CHECKPOINT_DISABLE: '1', TF_IN_AUTOMATION: '1' },
      });
      assert.equal(r.status, 0, `terraform ${args.join(' ')}: ${r.stderr}`);
      return r.stdout;
    };
    tf('init', '-input=false');
    tf('apply', '-auto-approve', '-input=false');
    assert.equal(tf('output', '-raw', 'text'), text);
  });
  it('refuses an unknown resource type', () =>
    refuses((d) => (d.resource.docker_plugin = { p: { name: 'x' } }), /resource type docker_plugin/));
  it('refuses an unknown attribute, naming the resource', () =>
    refuses((d) => (server0(d).privileged = true), /docker_container\.fleet_ws-server-0_[A-F0-9]+: attribute privileged/));
  it("knows the swarm target's resources as strictly, all the way down the services' nested blocks", () => {
    const swarm = () => JSON.parse(serviceDoc());
    applier.validate(swarm());
    const service = (x: any, name: string) => Object.values(x.resource.docker_service).find((s: any) => s.name === name) as any;
    const refusesSwarm = (mutate: (d: any) => void, message: RegExp) => {
      const d = swarm();
      mutate(d);
      assert.throws(
        () => applier.validate(d),
        (e: unknown) => e instanceof UnsupportedError && message.test(e.message),
      );
    };
    refusesSwarm(
      (x) => (service(x, 'ws-nginx').task_spec.container_spec.configs[0].file_uid = '101'),
      /task_spec\.container_spec\.configs\.file_uid is not supported/,
    );
    refusesSwarm((x) => (service(x, 'ws-server').mode.replicated_job = {}), /mode\.replicated_job is not supported/);
    refusesSwarm((x) => (service(x, 'ws-nats').task_spec.placement.prefs = ['spread=node.id']), /placement\.prefs is not supported/);
    refusesSwarm((x) => (service(x, 'ws-nginx').endpoint_spec.ports[0].name = 'https'), /endpoint_spec\.ports\.name is not supported/);
    refusesSwarm(
      (x) => (service(x, 'ws-load-client').task_spec.container_spec.mounts[0].bind_options = {}),
      /mounts\.bind_options is not supported/,
    );
    refusesSwarm(
      (x) => ((Object.values(x.resource.docker_config)[0] as any).template_driver = 'golang'),
      /docker_config\..*: attribute template_driver/,
    );
    refusesSwarm(
      (x) => ((Object.values(x.resource.docker_secret)[0] as any).lifecycle.ignore_changes = ['data']),
      /lifecycle\.ignore_changes/,
    );
  });
  it('refuses an unknown nested attribute', () =>
    refuses((d) => (server0(d).healthcheck.start_interval = '1s'), /healthcheck\.start_interval/));
  it('refuses a volume shape it does not know', () =>
    refuses((d) => (server0(d).volumes = [{ from_container: 'x', container_path: '/x' }]), /volumes\.from_container/));
  it('refuses an expression it cannot evaluate', () => refuses((d) => server0(d).env.push('X=${upper(var.x)}'), /unsupported expression/));
  it('refuses a condition it cannot evaluate', () =>
    refuses((d) => {
      const job = Object.values(d.resource.docker_container).find((c: any) => c.name === 'ws-load-client') as any;
      job.lifecycle.postcondition[0].condition = '${self.exit_code < 2}';
    }, /unsupported condition/));
  it('refuses other provisioners and providers', () => {
    refuses((d) => {
      const data = Object.values(d.resource.terraform_data).find((r: any) => r.provisioner) as any;
      data.provisioner.push({ 'remote-exec': { inline: ['true'] } });
    }, /provisioner remote-exec/);
    refuses((d) => (d.provider.aws = [{}]), /provider aws/);
  });
  it('refuses a reference to a resource that is not there', async () => {
    const d = doc();
    server0(d).image = '${docker_image.missing_ABC.image_id}';
    await assert.rejects(applier.apply(d), /docker_image\.missing_ABC, which is not in the configuration/);
  });
});

describe('offline applier: moved blocks', () => {
  const doc = (moved: { from: string; to: string }[]): TerraformDocument => ({
    resource: { terraform_data: { new_B: { triggers_replace: { sha256: 'x' } } } },
    moved,
  });

  it('moves the state entry to its new address and keeps the object (no replacement)', async () => {
    const stateFile = join(scratchDir('ws-applier-'), 'state.json');
    writeFileSync(
      stateFile,
      JSON.stringify({
        'terraform_data.old_A': {
          type: 'terraform_data',
          config: { triggers_replace: { sha256: 'x' } },
          attrs: { id: 'kept-1' },
          dependsOn: [],
        },
      }),
    );
    const report = await new OfflineApplier(stateFile).apply(doc([{ from: 'terraform_data.old_A', to: 'terraform_data.new_B' }]));
    assert.deepEqual(report.kept, ['terraform_data.new_B']);
    assert.deepEqual([...report.created, ...report.replaced, ...report.destroyed], []);
    const state = JSON.parse(readFileSync(stateFile, 'utf8'));
    assert.deepEqual(Object.keys(state), ['terraform_data.new_B']);
    assert.equal(state['terraform_data.new_B'].attrs.id, 'kept-1', 'the same object');
  });

  it('refuses a move to another type or to an address that is not configured', () => {
    const applier = new OfflineApplier('/nonexistent/state.json');
    assert.throws(() => applier.validate(doc([{ from: 'docker_image.old_A', to: 'terraform_data.new_B' }])), /cannot change its type/);
    assert.throws(
      () => applier.validate(doc([{ from: 'terraform_data.old_A', to: 'terraform_data.gone_C' }])),
      /gone_C is not in the configuration/,
    );
    assert.throws(
      () => applier.validate(doc([{ from: 'terraform_data.old_A', to: 'terraform_data.new_B', index: 1 } as { from: string; to: string }])),
      /moved\.index/,
    );
  });
});

describe('offline applier: the plan, before anything is touched', () => {
  const entry = (type: string, config: Record<string, unknown>, dependsOn: string[] = []) => ({
    type,
    config,
    attrs: { id: 'x' },
    dependsOn,
  });

  it('orders the stack dependencies first, and lists what left the configuration, without touching the state it was given', () => {
    const text = synth({ replicas: 2 }).text;
    const state = {
      'docker_container.gone_Z': entry('docker_container', { name: 'gone' }),
      'docker_volume.old_V': entry('docker_volume', { name: 'v' }),
    };
    const before = JSON.stringify(state);
    const plan = planApply(JSON.parse(text), state);
    const position = new Map(plan.steps.map((s, i) => [s.address, i]));
    for (const step of plan.steps)
      for (const d of step.deps) assert.ok(position.get(d)! < position.get(step.address)!, `${d} before ${step.address}`);
    assert.deepEqual(plan.orphans.sort(), ['docker_container.gone_Z', 'docker_volume.old_V']);
    assert.ok(plan.steps.some((s) => s.type === 'docker_container' && s.deps.some((d) => d.startsWith('docker_network.'))));
    assert.equal(JSON.stringify(state), before, 'planning is pure');
  });

  it('applies moved blocks to its copy of the state, and the dependents follow', () => {
    const doc = {
      resource: { terraform_data: { new_B: { triggers_replace: { v: 1 } } } },
      moved: [{ from: 'terraform_data.old_A', to: 'terraform_data.new_B' }],
    };
    const plan = planApply(doc, {
      'terraform_data.old_A': entry('terraform_data', { triggers_replace: { v: 1 } }),
      'terraform_data.dep_C': entry('terraform_data', {}, ['terraform_data.old_A']),
    });
    assert.deepEqual(plan.moved, [{ from: 'terraform_data.old_A', to: 'terraform_data.new_B' }]);
    assert.deepEqual(plan.state['terraform_data.dep_C'].dependsOn, ['terraform_data.new_B']);
    assert.deepEqual(plan.orphans, ['terraform_data.dep_C']);
  });

  it('decides create, keep, replace, or an in-place update for a service', () => {
    const step = (type: string, triggeredBy: string[] = []): PlanStep => ({
      address: `${type}.a_1`,
      type,
      config: {},
      deps: [],
      triggeredBy,
      createFirst: false,
    });
    const none = new Set<string>();
    assert.equal(decide(step('docker_container'), { name: 'c' }, undefined, none), 'create');
    assert.equal(
      decide(step('docker_container'), { name: 'c', wait: true }, entry('docker_container', { name: 'c' }), none),
      'keep',
      'wait forces nothing',
    );
    assert.equal(
      decide(step('docker_container'), { name: 'c', env: ['A=2'] }, entry('docker_container', { name: 'c', env: ['A=1'] }), none),
      'replace',
    );
    assert.equal(
      decide(
        step('docker_container'),
        { name: 'c', env: ['B=1', 'A=1'] },
        entry('docker_container', { name: 'c', env: ['A=1', 'B=1'] }),
        none,
      ),
      'keep',
      "a container's env is a set in the provider: its order is no change",
    );
    assert.equal(decide(step('docker_service'), { name: 's', x: 2 }, entry('docker_service', { name: 's', x: 1 }), none), 'update');
    assert.equal(
      decide(step('docker_service'), { name: 't' }, entry('docker_service', { name: 's' }), none),
      'replace',
      'renamed: a new service',
    );
    const triggered = step('docker_container', ['terraform_data.run_R']);
    assert.equal(decide(triggered, { name: 'c' }, entry('docker_container', { name: 'c' }), new Set(['terraform_data.run_R'])), 'replace');
    // terraform_data is replaced only by triggers_replace.
    assert.equal(
      decide(step('terraform_data'), { input: 2, triggers_replace: 1 }, entry('terraform_data', { input: 1, triggers_replace: 1 }), none),
      'keep',
    );
  });
});
