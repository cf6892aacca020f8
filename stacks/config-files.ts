import { createHash } from 'node:crypto';
import { Construct } from 'constructs';
import { DataResource, type ITerraformDependable } from 'cdktf';

export interface ConfigFilesProps {
  /** Absolute host directory the files are written under (bind-mounted into a container). */
  readonly dir: string;
  /** Relative path → content. */
  readonly files: Record<string, string>;
  /**
   * The files are written once these exist.
   * @default nothing
   */
  readonly dependsOn?: ITerraformDependable[];
}

const SAFE_PATH = /^[A-Za-z0-9._-]+(\/[A-Za-z0-9._-]+)*$/;

/**
 * Text as a Terraform string literal: every string in a configuration is a template, so a file
 * holding `${…}` or `%{…}` (a shell script's `${d#/proc/}`) would be read as an interpolation;
 * Terraform's escapes, `$${` and `%%{`, keep it as it is.
 */
export function terraformLiteral(text: string): string {
  // Functions as replacements: in a replacement string `$$` would itself mean one `$`.
  return text.replace(/\$\{/g, () => '$${').replace(/%\{/g, () => '%%{');
}

/**
 * Rendered config files written on the host at apply time, each atomically (write, then rename),
 * so a process reading them never sees half a file. A change to any file replaces this resource,
 * which rewrites them; `sha256` lets a reload step trigger on the same change. The contents
 * travel in environment variables, not in the command line, so no quoting can break them.
 */
export class ConfigFiles extends Construct {
  readonly resource: DataResource;
  readonly sha256: string;

  constructor(scope: Construct, id: string, props: ConfigFilesProps) {
    super(scope, id);
    const names = Object.keys(props.files).sort();
    for (const name of names) if (!SAFE_PATH.test(name)) throw new Error(`ConfigFiles: unsafe relative path "${name}"`);
    const hash = createHash('sha256');
    for (const name of names) hash.update(`${name}\0${props.files[name]}\0`);
    this.sha256 = hash.digest('hex');

    const environment: Record<string, string> = { CONF_DIR: props.dir };
    const writes = names.map((name, i) => {
      environment[`CONF_FILE_${i}`] = terraformLiteral(props.files[name]);
      return `put "$CONF_DIR/${name}" "$CONF_FILE_${i}"`;
    });
    const put = 'put() { mkdir -p "$(dirname "$1")" && printf "%s" "$2" > "$1.tmp" && mv -f "$1.tmp" "$1"; }';
    this.resource = new DataResource(this, 'files', {
      input: { dir: props.dir, files: names, sha256: this.sha256 },
      triggersReplace: { sha256: this.sha256 },
      dependsOn: props.dependsOn,
      provisioners: [{ type: 'local-exec', command: [put, ...writes].join(' && '), environment }],
    });
  }
}
