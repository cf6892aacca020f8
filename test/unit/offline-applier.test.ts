import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { OfflineApplier } from '../../tools/offline-applier/applier';
import { UnsupportedError } from '../../tools/offline-applier/expressions';
import { synth } from '../helpers/synth';

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
  it('refuses an unknown resource type', () => refuses((d) => (d.resource.docker_volume = { v: { name: 'x' } }), /resource type docker_volume/));
  it('refuses an unknown attribute, naming the resource', () =>
    refuses((d) => (server0(d).privileged = true), /docker_container\.fleet_ws-server-0_[A-F0-9]+: attribute privileged/));
  it('refuses an unknown nested attribute', () => refuses((d) => (server0(d).healthcheck.start_interval = '1s'), /healthcheck\.start_interval/));
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
