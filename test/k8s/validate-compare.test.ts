// The API server's own validation and defaulting of NetworkPolicy against `moat validate`, object by
// object: each corpus entry is created with dryRun=All (what `kubectl create --dry-run=server`
// sends, with strict field validation as kubectl's default) and loaded by moat's loader. Both must
// agree on accept/reject; for accepted objects, the model moat builds from the object must equal the
// model it builds from the object the server returns (which carries the server's defaults
// explicitly: policyTypes, port protocol). The CLI (`moat validate -f DIR`) must reject exactly the
// same files as the loader. Skips until test/k8s/build.sh has run.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

import { decodeApiObject } from '../../src/agent/k8s-decode.js';
import { formatProblem } from '../../src/errors.js';
import { mapLimit } from '../../src/lab/exec.js';
import { loadPaths } from '../../src/model/load.js';
import type { NetworkPolicy } from '../../src/model/types.js';
import { apiRequest, kubectl } from './access.js';
import { clusterSkipReason, startCluster, type Cluster } from './cluster.js';
import { CORPUS, type CorpusCase } from './netpol-corpus.js';

const NS = 'moat-vc';
const BIN = fileURLToPath(new URL('../../src/cli/bin.js', import.meta.url));

const skip = (() => {
  try {
    return clusterSkipReason() ?? false;
  } catch (e) {
    return e instanceof Error ? e.message : String(e);
  }
})();

function objectOf(tc: CorpusCase): Record<string, unknown> {
  return {
    apiVersion: 'networking.k8s.io/v1',
    kind: 'NetworkPolicy',
    metadata: { name: tc.name, namespace: NS, ...tc.metadata },
    spec: tc.spec,
  };
}

interface ServerVerdict {
  readonly accepted: boolean;
  /** The stored (defaulted) object, when accepted. */
  readonly object?: unknown;
  /** "field: message" of each cause, or the message of the Status. */
  readonly problems: readonly string[];
  readonly fields: readonly string[];
  readonly warnings: readonly string[];
}

async function serverVerdict(c: Cluster, obj: Record<string, unknown>): Promise<ServerVerdict> {
  const res = await apiRequest(
    c,
    'POST',
    `/apis/networking.k8s.io/v1/namespaces/${NS}/networkpolicies?dryRun=All&fieldValidation=Strict`,
    obj,
  );
  if (res.status === 201 || res.status === 200) {
    return { accepted: true, object: res.body, problems: [], fields: [], warnings: res.warnings };
  }
  const st = res.body as {
    reason?: string;
    message?: string;
    details?: { causes?: { field?: string; message?: string }[] };
  };
  // 422 Invalid (validation) or 400 BadRequest (strict decoding: unknown or duplicate fields).
  if (res.status !== 422 && res.status !== 400) {
    throw new Error(`unexpected answer ${res.status}: ${JSON.stringify(res.body)}`);
  }
  const causes = st.details?.causes ?? [];
  // Strict decoding names its fields in the message only: `unknown field "spec.ingres"`.
  const unknown = [...(st.message ?? '').matchAll(/unknown field "([^"]+)"/g)].map((m) => m[1] ?? '');
  return {
    accepted: false,
    problems:
      causes.length > 0 ? causes.map((x) => `${x.field ?? ''}: ${x.message ?? ''}`) : [st.message ?? ''],
    fields: causes.length > 0 ? causes.map((x) => x.field ?? '') : unknown,
    warnings: res.warnings,
  };
}

/**
 * The model without its origin (FILE:LINE differs between a file and an API object) and without
 * `implicit` (what the input left to defaulting, for lint: the server's stored object has it all
 * written out, and no semantics read it).
 */
function model(p: NetworkPolicy | undefined): unknown {
  if (p === undefined) return undefined;
  return JSON.parse(
    JSON.stringify(p, (k, v: unknown) => (k === 'origin' || k === 'implicit' ? undefined : v)),
  ) as unknown;
}

interface SpecLike {
  policyTypes?: string[];
  ingress?: { ports?: { protocol?: string }[] }[];
  egress?: { ports?: { protocol?: string }[] }[];
}

function execCli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [BIN, ...args], (err, stdout, stderr) => {
      resolve({ code: err === null ? 0 : typeof err.code === 'number' ? err.code : 1, stdout, stderr });
    });
  });
}

test('NetworkPolicy validation and defaulting: kube-apiserver vs moat validate', { skip }, async (t) => {
  assert.ok(CORPUS.length >= 25, 'at least 25 cases');
  assert.equal(new Set(CORPUS.map((x) => x.id)).size, CORPUS.length, 'case ids are unique');
  const c = await startCluster();
  const dir = await mkdtemp(join(tmpdir(), 'moat-vc-'));
  try {
    await kubectl(c, ['create', 'namespace', NS]);
    const files = new Map<string, string>();
    for (const tc of CORPUS) {
      const f = join(dir, `${tc.id}.json`);
      files.set(tc.id, f);
      await writeFile(f, JSON.stringify(objectOf(tc), null, 2));
    }
    const server = await mapLimit(CORPUS, 4, (tc) => serverVerdict(c, objectOf(tc)));

    const disagreements: string[] = [];
    const defaulting: string[] = [];
    const warningDiffs: string[] = [];
    const fieldDiffs: string[] = [];
    const intentDiffs: string[] = [];
    const moatRejected = new Set<string>();
    let warned = 0;
    for (const [i, tc] of CORPUS.entries()) {
      const srv = server[i]!;
      const file = files.get(tc.id)!;
      const res = await loadPaths([file]);
      const moatOk = res.problems.length === 0;
      if (!moatOk) moatRejected.add(file);
      const moatSays = moatOk ? 'accepted' : `rejected: ${res.problems.map(formatProblem).join(' | ')}`;
      const srvSays = srv.accepted ? 'accepted' : `rejected: ${srv.problems.join(' | ')}`;
      t.diagnostic(
        `${tc.id}: server ${srv.accepted ? 'accepts' : 'rejects'}, moat ${moatOk ? 'accepts' : 'rejects'}`,
      );
      // The corpus says what each case is meant to exercise; a server that disagrees means the
      // case does not test what it claims.
      if (srv.accepted !== (tc.intent === 'accept'))
        intentDiffs.push(`${tc.id}: intended ${tc.intent}, server ${srvSays}`);
      if (srv.accepted !== moatOk) {
        disagreements.push(`${tc.id} (${tc.why}):\n    API server: ${srvSays}\n    moat:       ${moatSays}`);
        continue;
      }
      if (!srv.accepted) {
        // Same verdict; do they blame the same fields? (moat reports a few things one level up or
        // down; reported, not asserted.)
        const mf = [...new Set(res.problems.map((p) => p.field))].sort();
        const sf = [...new Set(srv.fields)].sort();
        // A body the server cannot decode (a number where a string belongs) comes back as a
        // message without fields: nothing to compare there.
        if (sf.length > 0 && JSON.stringify(mf) !== JSON.stringify(sf)) {
          fieldDiffs.push(`${tc.id}: server blames ${JSON.stringify(sf)}, moat ${JSON.stringify(mf)}`);
        } else if (sf.length === 0) {
          t.diagnostic(`${tc.id}: server: ${srv.problems.join(' | ')}; moat blames ${JSON.stringify(mf)}`);
        }
        continue;
      }
      // Accepted by both: defaulting.
      const mine = res.snapshot.policies[0];
      const fromServer = decodeApiObject('NetworkPolicy', srv.object);
      if (fromServer.problems.length > 0) {
        defaulting.push(
          `${tc.id}: moat rejects the object the server stored: ${fromServer.problems.map((p) => `${p.field}: ${p.message}`).join(' | ')}`,
        );
        continue;
      }
      if (
        JSON.stringify(model(mine)) !==
        JSON.stringify(model(fromServer.decoded?.object as NetworkPolicy | undefined))
      ) {
        defaulting.push(
          `${tc.id}: model from the object ${JSON.stringify(model(mine))}\n    model from the server's ${JSON.stringify(model(fromServer.decoded?.object as NetworkPolicy | undefined))}`,
        );
      }
      // The defaulted fields themselves, read straight off the server's object.
      const spec = (srv.object as { spec: SpecLike }).spec;
      const srvTypes = [...new Set(spec.policyTypes ?? [])].sort();
      const moatTypes = [...(mine?.policyTypes ?? [])].sort();
      if (JSON.stringify(srvTypes) !== JSON.stringify(moatTypes)) {
        defaulting.push(
          `${tc.id}: policyTypes: server ${JSON.stringify(spec.policyTypes)}, moat ${JSON.stringify(moatTypes)}`,
        );
      }
      const protocols = (rules: SpecLike['ingress']) =>
        (rules ?? []).flatMap((r) => (r.ports ?? []).map((p) => p.protocol));
      const srvProtos = [...protocols(spec.ingress), ...protocols(spec.egress)];
      const moatProtos = [...(mine?.ingress ?? []), ...(mine?.egress ?? [])].flatMap((r) =>
        (r.ports ?? []).map((p) => p.protocol),
      );
      if (JSON.stringify(srvProtos) !== JSON.stringify(moatProtos)) {
        defaulting.push(
          `${tc.id}: protocols: server ${JSON.stringify(srvProtos)}, moat ${JSON.stringify(moatProtos)}`,
        );
      }
      // Warnings (non-canonical CIDRs): both warn, or neither.
      if (srv.warnings.length > 0) warned++;
      const moatWarnings = decodeApiObject('NetworkPolicy', objectOf(tc)).warnings;
      if (srv.warnings.length > 0 !== moatWarnings.length > 0) {
        warningDiffs.push(
          `${tc.id}: server ${JSON.stringify(srv.warnings)}, moat ${JSON.stringify(moatWarnings)}`,
        );
      }
    }

    // The CLI rejects exactly the files the loader rejects (one run over the directory).
    const cli = await execCli(['validate', '-f', dir]);
    const cliRejected = new Set(
      cli.stdout
        .split('\n')
        .filter((l) => l !== '')
        .map((l) => l.slice(0, l.indexOf('.json:') + 5)),
    );
    if (moatRejected.size > 0) assert.equal(cli.code, 1, cli.stderr);
    assert.deepEqual([...cliRejected].sort(), [...moatRejected].sort(), 'moat validate -f DIR vs the loader');

    const accepted = server.filter((s) => s.accepted).length;
    t.diagnostic(`${CORPUS.length} cases: server accepted ${accepted}, rejected ${CORPUS.length - accepted}`);
    t.diagnostic(`${warned} accepted cases drew API warnings`);
    assert.ok(warned > 0, 'the API server warned about none of the non-canonical CIDRs: are warnings read?');
    assert.deepEqual(warningDiffs, [], 'one side warns, the other does not');
    assert.deepEqual(intentDiffs, [], 'cases whose intent the server does not share');
    assert.deepEqual(disagreements, [], 'accept/reject disagreements');
    assert.deepEqual(defaulting, [], 'defaulting disagreements');
    assert.deepEqual(fieldDiffs, [], 'rejected by both, but for different fields');
  } finally {
    await rm(dir, { recursive: true, force: true });
    await c.stop();
  }
});
