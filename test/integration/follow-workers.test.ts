import assert from 'node:assert/strict';
import { execFile, spawnSync } from 'node:child_process';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { describe, it, type TestContext } from 'node:test';
import { CONTROL_PATHS, PROXY_WORKER_HEADER, type ConnectionsReport } from '../../app/src/shared/control';
import { defineTopology } from '../../app/src/topology';
import { announcementTiming } from '../../control/reload';
import { httpReplica } from '../../control/access';
import { renderAnnounceFunctions, renderFollowScript, renderWorkerFunctions } from '../../nginx/follow-tasks';
import { freePort, start, stop } from '../../local/processes';
import { eventually, startServer, TEST_CONTROL_KEY, TestClient } from '../helpers/server';
import { scratchDir } from '../helpers/scratch';

const sh = (script: string) => spawnSync('sh', ['-c', script], { encoding: 'utf8' });

describe("the follower finds a reload's new workers (nginx/follow-tasks.ts)", () => {
  it('takes only a full set of new workers: none the reload retired, however the listing interleaves', () => {
    const fns = renderWorkerFunctions(2, '/nonexistent.pid');
    const fresh = (before: string, current: string) => sh(`${fns}\nfresh "${before}" "${current}"`).status;
    // Right after a HUP: the new workers are up, the old ones not yet "shutting down".
    assert.equal(fresh('11 12', '11 12 13 14'), 1);
    assert.equal(fresh('11 12', '12 13'), 1);
    assert.equal(fresh('11 12', '13'), 1, 'not all new workers up yet');
    assert.equal(fresh('11 12', ''), 1);
    assert.equal(fresh('11 12', '13 14'), 0);
    assert.equal(fresh('11 12', '111 112'), 0, 'a pid containing an old one is not the old one');
    // An old worker missing from the listing before the reload is still not new beside the new ones.
    assert.equal(fresh('12', '11 13 14'), 1, 'more than worker_processes is a mix of old and new');
  });

  it('lists a child whose title cannot be read, so an old worker is never missing from the set', (t) => {
    const dir = scratchDir('ws-follow-unreadable-');
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    const pidFile = join(dir, 'nginx.pid');
    // A "master" whose one child is a pid that has exited (no /proc entry), as when a title is read too late.
    const gone = spawnSync('true').pid;
    writeFileSync(pidFile, '4242');
    const fns = renderWorkerFunctions(2, pidFile).replace(
      /^children\(\) \{/m,
      `children() { echo ${gone}; return 0; }\nunused_children() {`,
    );
    const out = sh(`${fns}\nworkers`);
    assert.equal(out.stdout.trim(), String(gone));
    assert.equal(out.stderr, '', 'no shell error for the unreadable title');
  });

  it('after a worker crashed and was replaced, the next reload still gets its whole delay', async (t) => {
    const { dir, pidFile, workers } = await twoWorkerNginx(t, 'ws-follow-crash-');
    // The replicas: one endpoint that keeps every announcement.
    const announcements: { workers: number[]; retired: number[]; shedAfterMs: number }[] = [];
    const replica = createServer((req, res) => {
      let body = '';
      req.on('data', (d) => (body += d));
      req.on('end', () => {
        if (req.url === CONTROL_PATHS.proxyWorkers) announcements.push(JSON.parse(body));
        res.end('{}');
      });
    });
    let follower: ReturnType<typeof start> | undefined;
    t.after(async () => {
      if (follower) await stop(follower, 'SIGTERM', 5_000, { group: true });
      replica.close();
    });
    await new Promise<void>((resolve) => replica.listen(0, '127.0.0.1', resolve));
    const options = { configFile: join(dir, 'upstream.conf'), pidFile, controlKeyFile: join(dir, 'key') };
    writeFileSync(options.configFile, `upstream ws {\n  server 127.0.0.1:${(replica.address() as AddressInfo).port} max_fails=0;\n}\n`);
    writeFileSync(options.controlKeyFile, TEST_CONTROL_KEY);
    const topology = defineTopology({ proxy: { workerProcesses: 2 } });
    follower = start('follower', 'sh', ['-c', renderFollowScript(topology, options)]);
    await eventually(() => follower!.output().includes('watching'), 10_000, 'the follower watching');
    // A worker dies; the master starts another: one old worker and one new, which is no reload.
    process.kill(workers()[0], 'SIGKILL');
    await eventually(() => follower!.output().includes('not a whole new set'), 30_000, 'the follower giving up on it');
    // Time passes before the next reload: a follower that kept its reload clock running since the
    // give-up takes these 5 s off the delay, which the assertion below would see.
    await new Promise((r) => setTimeout(r, 5_000));
    const replaced = workers();
    const hupAt = Date.now();
    process.kill(Number(readFileSync(pidFile, 'utf8')), 'SIGHUP');
    await eventually(() => announcements.length > 0, 15_000, 'the reload announced');
    const plan = announcementTiming(topology.proxy);
    const late = Date.now() - hupAt;
    // The delay runs from the reload, not from the crash: at most the announcement's own lateness is taken off.
    assert.ok(
      announcements[0].shedAfterMs >= plan.shedAfterMs - late - 1_000,
      `shedAfterMs ${announcements[0].shedAfterMs}, the plan ${plan.shedAfterMs}, announced ${late} ms after the reload\n${follower.output()}`,
    );
    assert.deepEqual(announcements[0].workers, workers());
    assert.deepEqual(announcements[0].retired, replaced, 'the reload retired the set nginx ran after the crash');
  });

  it('against a real nginx reload: the new workers, and none of the old', async (t) => {
    const { pidFile, fns, workers } = await twoWorkerNginx(t, 'ws-follow-');
    const before = workers();
    process.kill(Number(readFileSync(pidFile, 'utf8')), 'SIGHUP');
    // As the follower's loop does: look until the listing is a whole new set.
    let fresh: number[] = [];
    await eventually(
      () => {
        fresh = workers();
        return sh(`${fns}\nfresh "${before.join(' ')}" "${fresh.join(' ')}"`).status === 0;
      },
      15_000,
      'a whole new set of workers',
    );
    assert.equal(fresh.length, 2, String(fresh));
    assert.ok(
      fresh.every((pid) => !before.includes(pid)),
      `${fresh} against ${before}`,
    );
    const master = Number(readFileSync(pidFile, 'utf8'));
    for (const pid of fresh) {
      assert.match(readFileSync(`/proc/${pid}/status`, 'utf8'), new RegExp(`PPid:\\s+${master}\\n`));
      assert.match(readFileSync(`/proc/${pid}/cmdline`, 'utf8'), /^nginx: worker process\0*$/);
    }
  });
});

describe("the follower's announcement (nginx/follow-tasks.ts)", () => {
  it("names the reload's retired workers: a late handshake through one that held nothing is shed too", async (t) => {
    const dir = scratchDir('ws-announce-');
    const server = await startServer();
    t.after(async () => {
      await server.stop();
      rmSync(dir, { recursive: true, force: true });
    });
    const options = { configFile: join(dir, 'nginx.conf'), pidFile: join(dir, 'nginx.pid'), controlKeyFile: join(dir, 'key') };
    writeFileSync(options.configFile, `upstream ws {\n  server ${new URL(server.httpUrl).host} max_fails=0;\n}\n`);
    writeFileSync(options.controlKeyFile, TEST_CONTROL_KEY);
    const fns = renderAnnounceFunctions(defineTopology({}), options);
    // Not spawnSync: the replica answering curl runs in this process.
    const out = await promisify(execFile)('sh', [
      '-c',
      `log() { echo "$*" >&2; }\n${fns}\nkey=$(cat ${options.controlKeyFile})\nannounce "200 201 " "100 101 "`,
    ]);
    assert.match(out.stderr, /workers 200 201\s+announced to 1 replica/, out.stderr);

    const hostname = readFileSync('/proc/sys/kernel/hostname', 'utf8').trim();
    const late = await TestClient.open(server.url, { headers: { [PROXY_WORKER_HEADER]: `${hostname}/101` } });
    t.after(() => late.close());
    const report = await httpReplica('test', server.httpUrl, TEST_CONTROL_KEY).request<ConnectionsReport>('GET', CONTROL_PATHS.connections);
    assert.equal(report.retired, 1, 'the handshake through retired worker 101 waits for its 1001');
  });
});

/** A real nginx with two workers in a scratch folder, stopped after the test; `workers` lists them with the follower's `fns`. */
async function twoWorkerNginx(t: TestContext, prefix: string) {
  const dir = scratchDir(prefix);
  const pidFile = join(dir, 'nginx.pid');
  const port = await freePort();
  writeFileSync(
    join(dir, 'nginx.conf'),
    `worker_processes 2;\npid ${pidFile};\nerror_log ${dir}/error.log;\nevents {}\nhttp { access_log off; server { listen 127.0.0.1:${port}; return 204; } }\n`,
  );
  const nginx = start('nginx', 'nginx', ['-p', dir, '-c', join(dir, 'nginx.conf'), '-g', 'daemon off;']);
  t.after(async () => {
    await stop(nginx, 'SIGQUIT', 5_000);
    rmSync(dir, { recursive: true, force: true });
  });
  const fns = renderWorkerFunctions(2, pidFile);
  const workers = () => sh(`${fns}\nworkers`).stdout.trim().split(/\s+/).filter(Boolean).map(Number);
  await eventually(() => workers().length === 2, 10_000, 'nginx up with its two workers');
  return { dir, pidFile, fns, workers };
}
