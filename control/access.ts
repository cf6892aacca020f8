import { spawn } from 'node:child_process';
import { CONTROL_KEY_ENV } from '../app/src/topology/server-env';

/**
 * How the control plane reaches nginx and the replicas. The same reload and rebalance logic runs
 * against local processes (the local runner) and against containers (the stack's reload step),
 * so only these two small adapters differ.
 */
export interface ProxyAccess {
  /** Names the proxy in messages. */
  readonly name: string;
  /** Runs a shell command where nginx runs (this machine, or inside its container); resolves with stdout. */
  sh(command: string): Promise<string>;
  /** nginx's pid file, as seen where sh() runs. */
  readonly pidFile: string;
  /** Checks the configuration before a reload (`nginx -t ...`); a failure stops the reload. */
  readonly checkCommand: string;
}

export interface ReplicaAccess {
  readonly name: string;
  /** A control request (shared/control.ts) to the replica's own port; resolves with the JSON answer. */
  request<T>(method: 'GET' | 'POST', path: string, body?: unknown): Promise<T>;
}

/** Runs a command and resolves with its stdout; rejects with its stderr when it fails. */
function run(command: string, args: string[], env: Record<string, string> = {}): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (err += d));
    child.on('error', reject);
    // 'close', not 'exit': exit may come before the last of stdout has been read.
    child.on('close', (code) =>
      code === 0 ? resolve(out) : reject(new Error(`${[command, ...args].join(' ').slice(0, 200)} exited ${code}: ${(err || out).trim()}`)),
    );
  });
}

/**
 * nginx on this machine (the local runner's); `enter` is an argv prefix that runs the commands in
 * its namespaces (an HA proxy's: nsenter -t PID --net --uts --).
 */
export function localProxy(options: { name: string; pidFile: string; configFile: string; prefix: string; enter?: string[] }): ProxyAccess {
  const [command, ...args] = [...(options.enter ?? []), 'sh', '-c'];
  return {
    name: options.name,
    sh: (text) => run(command, [...args, text]),
    pidFile: options.pidFile,
    checkCommand: `nginx -t -q -c '${options.configFile}' -p '${options.prefix}'`,
  };
}

/** A replica listening on this machine's loopback; `key` is the deployment's control key. */
export function httpReplica(name: string, baseUrl: string, key: string): ReplicaAccess {
  return {
    name,
    async request<T>(method: 'GET' | 'POST', path: string, body?: unknown): Promise<T> {
      const res = await fetch(`${baseUrl}${path}`, {
        method,
        headers: { authorization: `Bearer ${key}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
        body: body === undefined ? undefined : JSON.stringify(body),
        signal: AbortSignal.timeout(10_000),
      });
      const text = await res.text();
      if (!res.ok) throw new Error(`${name}: ${method} ${path} answered ${res.status}: ${text.trim()}`);
      return JSON.parse(text) as T;
    },
  };
}

/** nginx in a container, reached with `docker exec`. */
export function dockerProxy(options: { container: string; pidFile: string; configFile: string }): ProxyAccess {
  return {
    name: options.container,
    sh: (command) => run('docker', ['exec', options.container, 'sh', '-c', command]),
    pidFile: options.pidFile,
    checkCommand: `nginx -t -q -c ${options.configFile}`,
  };
}

/**
 * A replica in a container. Its port is not published, so the request runs inside the
 * container with the image's own node (portable: no container addresses from the host), with
 * the control key the container was given (CONTROL_KEY_ENV), which never leaves it.
 */
export function dockerReplica(container: string, port: number): ReplicaAccess {
  const script =
    `const [m,p]=process.argv.slice(1);const k=require('fs').readFileSync(process.env.${CONTROL_KEY_ENV},'utf8').trim();` +
    "fetch('http://127.0.0.1:'+process.env.CONTROL_PORT+p,{method:m,headers:{'content-type':'application/json',authorization:'Bearer '+k},body:process.env.CONTROL_BODY||undefined})" +
    '.then(async r=>{process.stdout.write(await r.text());process.exit(r.ok?0:1)},e=>{console.error(e.message);process.exit(1)})';
  return {
    name: container,
    async request<T>(method: 'GET' | 'POST', path: string, body?: unknown): Promise<T> {
      const env = ['-e', `CONTROL_PORT=${port}`, ...(body === undefined ? [] : ['-e', `CONTROL_BODY=${JSON.stringify(body)}`])];
      const text = await run('docker', ['exec', ...env, container, 'node', '-e', script, method, path]);
      return JSON.parse(text) as T;
    },
  };
}
