import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { OfflineApplier } from '../../tools/offline-applier/applier';
import { UnsupportedError } from '../../tools/offline-applier/expressions';
import { synth } from '../helpers/synth';
import { Testing, TerraformStack } from 'cdktf';
import { DockerProvider } from '@cdktf/provider-docker/lib/provider';
import { defineTopology } from '../../app/src/topology';
import { ServerService } from '../../stacks/swarm/server-service';

/** A stack with the swarm target's servers service, synthesized. */
function serviceDoc(): string {
  const stack = new TerraformStack(Testing.app(), 'swarm');
  new DockerProvider(stack, 'docker', {});
  new ServerService(stack, 'servers', { topology: defineTopology({ replicas: 3 }), image: 'app', networkName: 'net', labels: {} });
  return Testing.synth(stack);
}

/** The offline stand-in for the provider refuses what it does not understand, by name. */
describe('offline applier strictness', () => {
  const applier = new OfflineApplier('/nonexistent/state.json');
  const doc = () => JSON.parse(synth({ replicas: 2 }).text);
  const refuses = (mutate: (d: any) => void, message: RegExp) => {
    const d = doc();
    mutate(d);
    assert.throws(() => applier.validate(d), (e: unknown) => e instanceof UnsupportedError && message.test(e.message));
  };
  const server0 = (d: any) => Object.values(d.resource.docker_container).find((c: any) => c.name === 'ws-server-0') as any;

  it('accepts everything the stack emits', () => applier.validate(doc()));
  it('refuses an unknown resource type', () => refuses((d) => (d.resource.docker_plugin = { p: { name: 'x' } }), /resource type docker_plugin/));
  it('refuses an unknown attribute, naming the resource', () =>
    refuses((d) => (server0(d).privileged = true), /docker_container\.fleet_ws-server-0_[A-F0-9]+: attribute privileged/));
  it('knows docker_service as strictly, all the way down its nested blocks', () => {
    const d = doc();
    const synthesized = JSON.parse(serviceDoc());
    d.resource.docker_service = synthesized.resource.docker_service;
    applier.validate(d);
    const svc = (x: any) => Object.values(x.resource.docker_service)[0] as any;
    refuses((x) => {
      x.resource.docker_service = JSON.parse(serviceDoc()).resource.docker_service;
      svc(x).task_spec.container_spec.secrets = [{ secret_id: 'x', file_name: '/x' }];
    }, /task_spec\.container_spec\.secrets is not supported/);
    refuses((x) => {
      x.resource.docker_service = JSON.parse(serviceDoc()).resource.docker_service;
      svc(x).mode.global = true;
    }, /mode\.global is not supported/);
  });
  it('refuses an unknown nested attribute', () => refuses((d) => (server0(d).healthcheck.start_interval = '1s'), /healthcheck\.start_interval/));
  it('refuses a volume shape it does not know', () => refuses((d) => (server0(d).volumes = [{ from_container: 'x', container_path: '/x' }]), /volumes\.from_container/));
  it('refuses an expression it cannot evaluate', () =>
    refuses((d) => (server0(d).env.push('X=${upper(var.x)}')), /unsupported expression/));
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
  const doc = (moved: unknown[]) => ({ resource: { terraform_data: { new_B: { triggers_replace: { sha256: 'x' } } } }, moved });

  it('moves the state entry to its new address and keeps the object (no replacement)', async () => {
    const stateFile = join(mkdtempSync(join(tmpdir(), 'ws-applier-')), 'state.json');
    writeFileSync(stateFile, JSON.stringify({ 'terraform_data.old_A': { type: 'terraform_data', config: { triggers_replace: { sha256: 'x' } }, attrs: { id: 'kept-1' }, dependsOn: [] } }));
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
    assert.throws(() => applier.validate(doc([{ from: 'terraform_data.old_A', to: 'terraform_data.gone_C' }])), /gone_C is not in the configuration/);
    assert.throws(() => applier.validate(doc([{ from: 'terraform_data.old_A', to: 'terraform_data.new_B', index: 1 }])), /moved\.index/);
  });
});
