// Asserts moat's deployment properties on rendered manifests (see checks.ts).
// Usage: node dist/test/deploy/check.js ROLE:NAME=FILE... [--same A,B]... [--same-container A,B]...
//   ROLE is agent | rbac | sidecar; --same compares DaemonSet and ClusterRole of two renderings.
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parseAllDocuments } from 'yaml';
import { checkRender, checkSame, checkSameContainer, type Obj, type Result, type Role } from './checks.js';

const ROLES: readonly Role[] = ['agent', 'rbac', 'sidecar'];

export function loadObjects(file: string): Obj[] {
  const objects: Obj[] = [];
  for (const doc of parseAllDocuments(readFileSync(file, 'utf8'))) {
    if (doc.errors.length > 0) throw new Error(`${file}: ${doc.errors.map((e) => e.message).join('; ')}`);
    const value: unknown = doc.toJS();
    if (value === null || value === undefined) continue;
    if (typeof value !== 'object' || Array.isArray(value))
      throw new Error(`${file}: a document is not an object`);
    objects.push(value as Obj);
  }
  return objects;
}

function pair(spec: string, flag: string): [string, string] {
  const [a, b, ...rest] = spec.split(',');
  if (a === undefined || b === undefined || rest.length > 0)
    throw new Error(`${flag} wants A,B, got ${spec}`);
  return [a, b];
}

export function run(argv: readonly string[]): Result[] {
  const renders = new Map<string, Obj[]>();
  const results: Result[] = [];
  const comparisons: [string, string, string][] = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] ?? '';
    if (arg === '--same' || arg === '--same-container') {
      comparisons.push([arg, ...pair(argv[++i] ?? '', arg)]);
      continue;
    }
    const m = /^([a-z]+):([^=]+)=(.+)$/.exec(arg);
    const role = m?.[1] as Role | undefined;
    if (
      m === null ||
      role === undefined ||
      !ROLES.includes(role) ||
      m[2] === undefined ||
      m[3] === undefined
    ) {
      throw new Error(`bad argument ${arg}: want ROLE:NAME=FILE with ROLE one of ${ROLES.join(', ')}`);
    }
    const objects = loadObjects(m[3]);
    renders.set(m[2], objects);
    results.push(...checkRender(m[2], role, objects));
  }
  for (const [flag, a, b] of comparisons) {
    const ao = renders.get(a);
    const bo = renders.get(b);
    if (ao === undefined || bo === undefined) throw new Error(`${flag} ${a},${b}: no such rendering`);
    results.push(...(flag === '--same' ? checkSame(a, ao, b, bo) : checkSameContainer(a, ao, b, bo)));
  }
  return results;
}

function main(argv: readonly string[]): number {
  const results = run(argv);
  const failed = results.filter((r) => !r.ok);
  for (const r of failed)
    process.stdout.write(`FAIL [${r.render}] ${r.check}${r.detail === '' ? '' : `: ${r.detail}`}\n`);
  const byRender = new Map<string, number>();
  for (const r of results) if (r.ok) byRender.set(r.render, (byRender.get(r.render) ?? 0) + 1);
  for (const [render, n] of byRender) process.stdout.write(`ok   [${render}] ${n} checks\n`);
  process.stdout.write(`properties: ${results.length - failed.length} passed, ${failed.length} failed\n`);
  return failed.length === 0 && results.length > 0 ? 0 : 1;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  try {
    process.exitCode = main(process.argv.slice(2));
  } catch (err) {
    process.stderr.write(`check: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exitCode = 2;
  }
}
