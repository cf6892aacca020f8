import assert from 'node:assert/strict';
import { chmodSync, rmSync, statSync } from 'node:fs';
import { describe, it } from 'node:test';
import { ensureTopologyCertificates } from '../../certs/generate';
import { defineTopology } from '../../app/src/topology';
import { scratchDir } from '../helpers/scratch';

const mode = (file: string) => statSync(file).mode & 0o777;

describe('the generated keys (real openssl)', () => {
  it("are fenced by a 0700 directory; the control key is 0644 inside it, for the replicas' unprivileged user behind a bind mount", (t) => {
    const root = scratchDir('ws-certs-');
    t.after(() => rmSync(root, { recursive: true, force: true }));
    const topology = defineTopology({ replicas: 1 });
    const made = ensureTopologyCertificates(topology, root);
    assert.equal(mode(made.dir), 0o700);
    for (const file of [made.keyFile, made.ticketKeyFile]) assert.equal(mode(file), 0o600, file);
    assert.equal(mode(made.controlKeyFile), 0o644);
    // A key made before (0600) is brought to its mode, and kept.
    chmodSync(made.controlKeyFile, 0o600);
    const before = statSync(made.controlKeyFile).mtimeMs;
    const again = ensureTopologyCertificates(topology, root);
    assert.equal(mode(again.controlKeyFile), 0o644);
    assert.equal(statSync(again.controlKeyFile).mtimeMs, before, 'the same key');
  });
});
