// The upstream CRDs of sigs.k8s.io/network-policy-api, from the Go module cache: `go mod download`
// brings the module through the Go module proxy (checked against the checksum database, as any
// module) and says where it is; the CRD YAML lives under config/crd/<channel>/ in it.
import { execFile } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** Path of `config/crd/<channel>/<file>` in module@version, downloading the module if needed. */
export function crdPath(module: string, version: string, channel: string, file: string): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(
      'go',
      ['mod', 'download', '-json', `${module}@${version}`],
      // Outside any go.mod, with the installed toolchain only.
      { cwd: tmpdir(), env: { ...process.env, GOTOOLCHAIN: 'local', GOFLAGS: '-mod=mod' }, timeout: 300_000 },
      (err, stdout, stderr) => {
        let dir: unknown;
        try {
          dir = (JSON.parse(stdout) as { Dir?: unknown; Error?: unknown }).Dir;
        } catch {
          // no JSON: err or stderr says why
        }
        if (typeof dir !== 'string') {
          reject(
            new Error(`go mod download ${module}@${version}: ${stderr.trim() || err?.message || stdout}`),
          );
          return;
        }
        resolve(join(dir, 'config', 'crd', channel, file));
      },
    );
  });
}

/** The ClusterNetworkPolicy CRD (v1beta1 and v1alpha2) of network-policy-api v0.3.0. */
export function clusterNetworkPolicyCrd(channel: 'standard' | 'experimental' = 'standard'): Promise<string> {
  return crdPath(
    'sigs.k8s.io/network-policy-api',
    'v0.3.0',
    channel,
    'policy.networking.k8s.io_clusternetworkpolicies.yaml',
  );
}
