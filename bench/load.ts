// Loading speed: N objects (default 50,000) as a `kubectl get -o json` dump (one List) and as
// multi-document YAML, each read, parsed, decoded and validated by loadPaths(), as every command
// that reads files does. The objects are a realistic mix: namespaces, pods with status.podIP and
// containerPorts, Deployments with pod templates, Services, NetworkPolicies (no admin ones).
//   node dist/bench/load.js [objects=50000] [runs=3]
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { stringify } from 'yaml';
import { loadPaths } from '../src/model/load.js';
import { median } from './netns.js';

/** `n` objects: per namespace 1 Namespace, 80 Pods, 4 Deployments, 8 Services, 7 NetworkPolicies. */
export function objects(n: number): unknown[] {
  const out: unknown[] = [];
  for (let k = 0; out.length < n; k++) {
    const ns = `team-${k}`;
    out.push({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: ns, labels: { team: `t${k % 20}` } } });
    for (let i = 0; i < 80 && out.length < n; i++) {
      const app = `app-${i % 8}`;
      out.push({
        apiVersion: 'v1',
        kind: 'Pod',
        metadata: {
          namespace: ns,
          name: `${app}-${i}`,
          labels: { app, tier: i % 3 === 0 ? 'front' : 'back' },
        },
        spec: {
          nodeName: `node-${i % 50}`,
          containers: [
            {
              name: 'main',
              image: 'registry.example/app:1',
              ports: [
                { name: 'http', containerPort: 8080, protocol: 'TCP' },
                { name: 'metrics', containerPort: 9090 },
              ],
            },
          ],
        },
        status: { phase: 'Running', podIP: `10.${(k >> 8) & 255}.${k & 255}.${i + 1}` },
      });
    }
    for (let i = 0; i < 4 && out.length < n; i++) {
      out.push({
        apiVersion: 'apps/v1',
        kind: 'Deployment',
        metadata: { namespace: ns, name: `web-${i}` },
        spec: {
          replicas: 3,
          selector: { matchLabels: { app: `web-${i}` } },
          template: {
            metadata: { labels: { app: `web-${i}` } },
            spec: {
              containers: [{ name: 'web', image: 'nginx', ports: [{ containerPort: 80, name: 'http' }] }],
            },
          },
        },
      });
    }
    for (let i = 0; i < 8 && out.length < n; i++) {
      out.push({
        apiVersion: 'v1',
        kind: 'Service',
        metadata: { namespace: ns, name: `svc-${i}` },
        spec: { selector: { app: `app-${i}` }, ports: [{ port: 80, targetPort: 'http' }] },
      });
    }
    for (let i = 0; i < 7 && out.length < n; i++) {
      out.push({
        apiVersion: 'networking.k8s.io/v1',
        kind: 'NetworkPolicy',
        metadata: { namespace: ns, name: `np-${i}` },
        spec: {
          podSelector: { matchLabels: { app: `app-${i}` } },
          policyTypes: ['Ingress', 'Egress'],
          ingress: [
            {
              from: [
                { podSelector: { matchLabels: { app: `app-${(i + 1) % 8}` } } },
                { namespaceSelector: { matchLabels: { team: `t${(k + i) % 20}` } } },
              ],
              ports: [{ port: 'http' }, { port: 9000, endPort: 9100 }],
            },
          ],
          egress: [
            { to: [{ ipBlock: { cidr: '0.0.0.0/0', except: ['10.0.0.0/8'] } }], ports: [{ port: 443 }] },
            { ports: [{ port: 53, protocol: 'UDP' }] },
          ],
        },
      });
    }
  }
  return out;
}

async function main(): Promise<void> {
  const n = Math.max(1, Number(process.argv[2] ?? 50_000));
  const runs = Math.max(1, Number(process.argv[3] ?? 3));
  const objs = objects(n);
  const dir = mkdtempSync(join(tmpdir(), 'moat-bench-load-'));
  try {
    const json = join(dir, 'dump.json');
    const yaml = join(dir, 'all.yaml');
    writeFileSync(json, JSON.stringify({ apiVersion: 'v1', kind: 'List', items: objs }, null, 2));
    writeFileSync(yaml, objs.map((o) => stringify(o)).join('---\n'));
    process.stdout.write(
      `date: ${new Date().toISOString()}; load average ${loadavg()
        .map((x) => x.toFixed(2))
        .join(' ')}; ${n} objects\n`,
    );
    for (const [label, file] of [
      ['json (kubectl get -o json)', json],
      ['yaml (multi-document)', yaml],
    ] as const) {
      const ms: number[] = [];
      let summary = '';
      for (let r = 0; r < runs; r++) {
        const t0 = performance.now();
        const res = await loadPaths([file]);
        ms.push(performance.now() - t0);
        const s = res.snapshot;
        summary =
          `${s.namespaces.length} namespaces, ${s.pods.length} pods, ${s.services?.length ?? 0} services, ` +
          `${s.policies.length} policies, ${res.problems.length} problems`;
      }
      const med = median(ms);
      process.stdout.write(
        `${label.padEnd(27)} median ${med.toFixed(0)} ms (${Math.min(...ms).toFixed(0)}-${Math.max(...ms).toFixed(0)}) over ${runs} runs, ` +
          `${((n / med) * 1000).toFixed(0)} objects/s; ${summary}\n`,
      );
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  await main();
}
