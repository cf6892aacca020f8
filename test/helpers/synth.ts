import { Testing } from 'cdktf';
import { rmSync } from 'node:fs';
import { resolve } from 'node:path';
import { defineTopology, type TopologyInput } from '../../app/src/topology';
import { WsNotificationsStack } from '../../stacks/ws-notifications-stack';
import { scratchDir } from './scratch';

export const ROOT = resolve(__dirname, '../..');

export interface Synthesized {
  stack: WsNotificationsStack;
  /** The synthesized Terraform JSON as text. */
  text: string;
  json: {
    terraform: any;
    resource: Record<string, Record<string, any>>;
    output: Record<string, any>;
    moved?: { from: string; to: string }[];
  };
}

/** Synthesizes the stack for a topology with the cdktf Testing API (no provider, no Docker). */
export function synth(input: Partial<TopologyInput> = {}, env: Record<string, string> = {}): Synthesized {
  const topology = defineTopology(input, env);
  // Testing.app() would leave a cdktf.outdir.* in the temp directory for every synth.
  const outdir = scratchDir('ws-synth-');
  try {
    const stack = new WsNotificationsStack(Testing.app({ outdir }), topology.name, { topology, root: ROOT, loadUser: '1000:1000' });
    const text = Testing.synth(stack);
    return { stack, text, json: JSON.parse(text) };
  } finally {
    rmSync(outdir, { recursive: true, force: true });
  }
}

/** Resources of one type, keyed by their `name` attribute where they have one. */
export function resourcesOf(s: Synthesized, type: string): Record<string, any>[] {
  return Object.values(s.json.resource[type] ?? {});
}

export function containerNamed(s: Synthesized, name: string): Record<string, any> {
  const found = resourcesOf(s, 'docker_container').find((c) => c.name === name);
  if (!found) throw new Error(`no container named ${name}`);
  return found;
}

/** The files a ConfigFiles resource writes (relative path → content), by resource id prefix. */
export function writtenFiles(s: Synthesized, idPrefix: string): Record<string, string> {
  const found = Object.entries(s.json.resource.terraform_data ?? {}).find(([id]) => id.startsWith(idPrefix));
  if (!found) throw new Error(`no config-files resource ${idPrefix}*`);
  const environment = found[1].provisioner[0]['local-exec'].environment;
  return Object.fromEntries((found[1].input.files as string[]).map((name, i) => [name, environment[`CONF_FILE_${i}`]]));
}

/** The rendered nginx.conf the proxy receives (through its config-install step). */
export function proxyConfig(s: Synthesized): string {
  return writtenFiles(s, 'proxy_config')['nginx.conf'];
}
