// The API server's validation of ClusterNetworkPolicy (v1beta1 and v1alpha2, network-policy-api
// v0.3.0), AdminNetworkPolicy and BaselineAdminNetworkPolicy (v1alpha1, v0.1.7) with the upstream
// CRDs installed, against `moat validate`, object by object (test/k8s/admin-corpus.ts; every CNP
// case is sent as both versions, whose schemas are identical). Each object is created with
// dryRun=All and fieldValidation=Strict (what `kubectl create --dry-run=server` sends), once with
// the standard channel's CRDs installed and once with the experimental channel's (one CRD name per
// kind, so one channel at a time), and validated by moat's loader and `moat validate -f DIR`.
//
// What is asserted:
// - moat against the experimental channel (moat accepts its superset: nodes, domainNames, named
//   ports): the same verdict, and for rejected objects the same blamed fields, for every case but
//   the known differences listed in admin-corpus.ts (moat deliberately stricter), which must
//   disagree exactly as listed.
// - the standard channel: a case that uses no experimental-only field (derived by walking the
//   object through both channels' schemas) gets the same answer from both channels; one that does
//   is rejected by strict decoding for exactly those fields (unknown field). moat does not claim the
//   standard channel, so such cases are not compared with moat.
// - the schema walk finds exactly the unknown fields the server names (so the derivation is right),
//   and each case's intent matches the server's verdict.
// - `moat validate -f DIR` prints exactly the loader's problems (FILE:LINE: KIND NAME: FIELD:
//   message) of the files in DIR.
//
// Normalisations of the server's causes before fields are compared:
// - strict decoding (400) names its fields in the message only: `unknown field "spec.foo"`, and
//   validates nothing else; moat reports unknown fields and validation problems at once, so for
//   such objects the server's fields are the strict answer's plus those of the same object sent
//   with fieldValidation=Ignore (unknown fields pruned, then validated).
// - the CEL rule on the BANP object (`self.metadata.name == 'default'`) is reported at `<nil>`
//   (the root); moat blames `metadata.name`.
// - a blocking schema error (wrong type, too long, too many items) makes the server skip every CEL
//   rule of the object and add a `<nil>` cause "some validation rules were not checked"; moat checks
//   them all. That cause is dropped, and moat may then blame more fields, but only with CEL-rule
//   problems (message `Invalid value: "object"|"string": ...`).
// Skips until test/k8s/build.sh has run (binaries and CRDs).
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { parse } from 'yaml';

import { formatProblem } from '../../src/errors.js';
import { mapLimit } from '../../src/lab/exec.js';
import { loadPaths } from '../../src/model/load.js';
import { CORPUS, KNOWN_DIFFERENCES, type AdminCase, type AdminKindName } from './admin-corpus.js';
import { apiRequest, kubectl } from './access.js';
import {
  clusterSkipReason,
  netpolApiCrds,
  startCluster,
  type Cluster,
  type NetpolApiCrds,
} from './cluster.js';

const BIN = fileURLToPath(new URL('../../src/cli/bin.js', import.meta.url));
const GROUP = 'policy.networking.k8s.io';
const PLURAL: Record<AdminKindName, string> = {
  ClusterNetworkPolicy: 'clusternetworkpolicies',
  AdminNetworkPolicy: 'adminnetworkpolicies',
  BaselineAdminNetworkPolicy: 'baselineadminnetworkpolicies',
};
const VERSIONS: Record<AdminKindName, readonly string[]> = {
  ClusterNetworkPolicy: ['v1beta1', 'v1alpha2'],
  AdminNetworkPolicy: ['v1alpha1'],
  BaselineAdminNetworkPolicy: ['v1alpha1'],
};
const CHANNELS = ['standard', 'experimental'] as const;
type Channel = (typeof CHANNELS)[number];
const NOT_CHECKED = 'some validation rules were not checked';
const BANP_NAME = 'Only one baseline admin network policy with metadata.name="default"';

let crds: { cnp: NetpolApiCrds; anp: NetpolApiCrds } | undefined;
const skip = (() => {
  try {
    const why = clusterSkipReason();
    if (why !== undefined) return why;
    const cnp = netpolApiCrds('NETPOL_API_CNP_VERSION');
    const anp = netpolApiCrds('NETPOL_API_ANP_VERSION');
    if (typeof cnp === 'string') return cnp;
    if (typeof anp === 'string') return anp;
    crds = { cnp, anp };
    return false;
  } catch (e) {
    return e instanceof Error ? e.message : String(e);
  }
})();

/** One object sent: a case at one apiVersion. */
interface Item {
  readonly label: string;
  readonly tc: AdminCase;
  readonly version: string;
  readonly object: Record<string, unknown>;
}

function items(): Item[] {
  return CORPUS.flatMap((tc) =>
    VERSIONS[tc.kind].map((version) => ({
      label: `${tc.id}@${version}`,
      tc,
      version,
      object: {
        apiVersion: `${GROUP}/${version}`,
        kind: tc.kind,
        metadata: { name: tc.name },
        ...(tc.spec === null ? {} : { spec: tc.spec }),
      },
    })),
  );
}

// ---- the CRDs' schemas, to find the fields a channel does not know

interface Schema {
  readonly properties?: Record<string, Schema>;
  readonly additionalProperties?: Schema | boolean;
  readonly items?: Schema;
}
interface Crd {
  readonly spec: {
    names: { kind: string };
    versions: { name: string; schema: { openAPIV3Schema: Schema } }[];
  };
}

function crdFiles(dir: string): string[] {
  return readdirSync(dir)
    .filter((f) => f.endsWith('.yaml'))
    .map((f) => join(dir, f));
}

/** kind -> version -> schema, for one channel's CRD files. */
function schemas(files: readonly string[]): Map<string, Map<string, Schema>> {
  const out = new Map<string, Map<string, Schema>>();
  for (const f of files) {
    const crd = parse(readFileSync(f, 'utf8')) as Crd;
    out.set(crd.spec.names.kind, new Map(crd.spec.versions.map((v) => [v.name, v.schema.openAPIV3Schema])));
  }
  return out;
}

/** The paths of fields of `v` that `s` does not define (metadata is ObjectMeta, checked elsewhere). */
function unknownFields(s: Schema | undefined, v: unknown, path: string): string[] {
  if (s === undefined || v === null || typeof v !== 'object') return [];
  if (Array.isArray(v)) return v.flatMap((x, i) => unknownFields(s.items, x, `${path}[${i}]`));
  if (s.properties === undefined && s.additionalProperties === undefined) return [];
  return Object.entries(v as Record<string, unknown>).flatMap(([k, x]) => {
    const p = path === '' ? k : `${path}.${k}`;
    const sub =
      s.properties?.[k] ?? (typeof s.additionalProperties === 'object' ? s.additionalProperties : undefined);
    return sub === undefined ? [p] : unknownFields(sub, x, p);
  });
}

// ---- the API server's answer

interface ServerVerdict {
  readonly accepted: boolean;
  readonly status: number;
  /** The fields blamed, normalised (see the header). */
  readonly fields: readonly string[];
  /** Whether the server skipped CEL rules because of a blocking error. */
  readonly celSkipped: boolean;
  readonly problems: readonly string[];
}

async function serverVerdict(
  c: Cluster,
  it: Item,
  fieldValidation: 'Strict' | 'Ignore' = 'Strict',
): Promise<ServerVerdict> {
  const path = `/apis/${GROUP}/${it.version}/${PLURAL[it.tc.kind]}?dryRun=All&fieldValidation=${fieldValidation}`;
  const res = await apiRequest(c, 'POST', path, it.object);
  if (res.status === 201 || res.status === 200) {
    return { accepted: true, status: res.status, fields: [], celSkipped: false, problems: [] };
  }
  if (res.status !== 422 && res.status !== 400) {
    throw new Error(`${it.label}: unexpected answer ${res.status}: ${JSON.stringify(res.body)}`);
  }
  const st = res.body as { message?: string; details?: { causes?: { field?: string; message?: string }[] } };
  const causes = st.details?.causes ?? [];
  const unknown = [...(st.message ?? '').matchAll(/unknown field "([^"]+)"/g)].map((m) => m[1] ?? '');
  const celSkipped = causes.some((x) => (x.message ?? '').includes(NOT_CHECKED));
  const fields = causes
    .filter((x) => !(x.message ?? '').includes(NOT_CHECKED))
    .map((x) =>
      x.field === '<nil>' && (x.message ?? '').includes(BANP_NAME) ? 'metadata.name' : (x.field ?? ''),
    );
  return {
    accepted: false,
    status: res.status,
    fields: causes.length > 0 ? fields : unknown,
    celSkipped,
    problems:
      causes.length > 0 ? causes.map((x) => `${x.field ?? ''}: ${x.message ?? ''}`) : [st.message ?? ''],
  };
}

const sorted = (xs: readonly string[]): string[] => [...new Set(xs)].sort();
const same = (a: readonly string[], b: readonly string[]): boolean =>
  JSON.stringify(sorted(a)) === JSON.stringify(sorted(b));

/** Installs one channel's CRDs (replacing the other's) and waits until the server serves them. */
async function installChannel(c: Cluster, ch: Channel, dirs: readonly NetpolApiCrds[]): Promise<void> {
  const other: Channel = ch === 'standard' ? 'experimental' : 'standard';
  for (const d of dirs) {
    await kubectl(c, ['delete', '--ignore-not-found', '--wait=true', '-f', d[other]]);
    await kubectl(c, ['apply', '-f', d[ch]]);
  }
  await kubectl(c, [
    'wait',
    '--for=condition=Established',
    '--timeout=60s',
    ...Object.values(PLURAL).map((p) => `crd/${p}.${GROUP}`),
  ]);
  // Established is not yet served: probe with an egress `nodes` peer, experimental-only in all
  // three kinds, until every kind answers as the channel says.
  const probes: Item[] = (Object.keys(PLURAL) as AdminKindName[]).map((kind) => {
    const version = VERSIONS[kind][0]!;
    const spec =
      kind === 'ClusterNetworkPolicy'
        ? {
            tier: 'Admin',
            priority: 1,
            subject: { namespaces: {} },
            egress: [{ action: 'Deny', to: [{ nodes: {} }] }],
          }
        : {
            ...(kind === 'AdminNetworkPolicy' ? { priority: 1 } : {}),
            subject: { namespaces: {} },
            egress: [{ action: 'Deny', to: [{ nodes: {} }] }],
          };
    const tc: AdminCase = { id: 'probe', kind, name: 'default', spec, intent: 'accept', why: 'probe' };
    return {
      label: `probe-${kind}`,
      tc,
      version,
      object: { apiVersion: `${GROUP}/${version}`, kind, metadata: { name: 'default' }, spec },
    };
  });
  const deadline = Date.now() + 60_000;
  for (;;) {
    const answers = await Promise.all(
      probes.map(async (p) => {
        try {
          return await serverVerdict(c, p);
        } catch {
          return undefined; // 404 while the resource is not yet served
        }
      }),
    );
    const ready = answers.every((a) => a !== undefined && a.accepted === (ch === 'experimental'));
    if (ready) return;
    if (Date.now() > deadline)
      throw new Error(`the ${ch} CRDs are not served after 60 s: ${JSON.stringify(answers)}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

function execCli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [BIN, ...args], (err, stdout, stderr) => {
      resolve({ code: err === null ? 0 : typeof err.code === 'number' ? err.code : 1, stdout, stderr });
    });
  });
}

interface MoatVerdict {
  readonly accepted: boolean;
  readonly fields: readonly string[];
  /** Fields blamed only by problems that quote a CEL rule. */
  readonly celFields: readonly string[];
  /** FILE:LINE: KIND NAME: FIELD: message */
  readonly problems: readonly string[];
}

/** The loader's verdict on one file (what `moat validate -f FILE` prints). */
async function moatVerdict(file: string): Promise<MoatVerdict> {
  const res = await loadPaths([file]);
  const isCel = (m: string): boolean => /^Invalid value: "(object|string)": /.test(m);
  const fields = res.problems.map((p) => p.field);
  const nonCel = new Set(res.problems.filter((p) => !isCel(p.message)).map((p) => p.field));
  return {
    accepted: res.problems.length === 0,
    fields,
    celFields: sorted(fields.filter((f) => !nonCel.has(f))),
    problems: res.problems.map(formatProblem),
  };
}

/**
 * Spreads the objects over as few directories as possible such that no directory holds two
 * objects of one kind and name (the loader reports duplicates, and every BANP is `default`).
 */
function buckets(all: readonly Item[]): number[][] {
  const out: { keys: Set<string>; idx: number[] }[] = [];
  all.forEach((it, i) => {
    const key = `${it.tc.kind}/${it.tc.name}`;
    let b = out.find((x) => !x.keys.has(key));
    if (b === undefined) {
      b = { keys: new Set(), idx: [] };
      out.push(b);
    }
    b.keys.add(key);
    b.idx.push(i);
  });
  return out.map((b) => b.idx);
}

test(
  'admin policy validation: kube-apiserver with the network-policy-api CRDs vs moat validate',
  { skip },
  async (t) => {
    const all = items();
    assert.ok(all.length >= 100, `at least 100 objects (${all.length})`);
    assert.equal(new Set(CORPUS.map((x) => x.id)).size, CORPUS.length, 'case ids are unique');
    assert.ok(crds !== undefined);
    const { cnp: cnpCrds, anp: anpCrds } = crds;
    const schema: Record<Channel, Map<string, Map<string, Schema>>> = {
      standard: schemas([...crdFiles(cnpCrds.standard), ...crdFiles(anpCrds.standard)]),
      experimental: schemas([...crdFiles(cnpCrds.experimental), ...crdFiles(anpCrds.experimental)]),
    };
    const unknownIn = (ch: Channel, it: Item): string[] =>
      unknownFields(schema[ch].get(it.tc.kind)?.get(it.version), it.object, '').filter(
        (f) => f !== 'metadata' && !f.startsWith('metadata.'),
      );

    const dir = await mkdtemp(join(tmpdir(), 'moat-avc-'));
    const c = await startCluster();
    try {
      // `moat validate -f DIR` over each bucket must print exactly the loader's problems of its
      // files (or "N objects valid"); the loader, file by file, gives the fields.
      const groups = buckets(all);
      const files: string[] = [];
      for (const [b, idx] of groups.entries()) {
        await mkdir(join(dir, `${b}`));
        for (const i of idx) files[i] = join(dir, `${b}`, `${all[i]!.label}.json`);
      }
      await Promise.all(all.map((it, i) => writeFile(files[i]!, JSON.stringify(it.object, null, 2))));
      const moat = await mapLimit(files, 4, (f) => moatVerdict(f));
      const cliDiffs: string[] = [];
      await mapLimit([...groups.entries()], 2, async ([b, idx]) => {
        const cli = await execCli(['validate', '-f', join(dir, `${b}`)]);
        const want = idx.flatMap((i) => moat[i]!.problems);
        const n = idx.length;
        const wantOut = want.length === 0 ? [`${n} ${n === 1 ? 'object' : 'objects'} valid`] : want;
        const printed = cli.stdout.split('\n').filter((l) => l !== '');
        if (
          cli.code !== (want.length === 0 ? 0 : 1) ||
          !same(printed, wantOut) ||
          printed.length !== wantOut.length
        ) {
          cliDiffs.push(
            `directory ${b}: exit ${cli.code}, printed ${JSON.stringify(printed)}, loader ${JSON.stringify(wantOut)}`,
          );
        }
      });
      const server: Record<Channel, ServerVerdict[]> = { standard: [], experimental: [] };
      for (const ch of CHANNELS) {
        await installChannel(c, ch, [cnpCrds, anpCrds]);
        server[ch] = await mapLimit(all, 4, (it) => serverVerdict(c, it));
      }
      // Strict decoding stops at unknown fields; what the server's validation says of the rest is
      // what it says with them pruned (fieldValidation=Ignore). moat reports both at once.
      const full = await mapLimit(all, 4, async (it, i): Promise<ServerVerdict> => {
        const strict = server.experimental[i]!;
        if (strict.status !== 400) return strict;
        const pruned = await serverVerdict(c, it, 'Ignore');
        return {
          accepted: false,
          status: 400,
          fields: [...strict.fields, ...pruned.fields],
          celSkipped: pruned.celSkipped,
          problems: [
            ...strict.problems,
            ...(pruned.accepted ? [] : ['with unknown fields pruned:', ...pruned.problems]),
          ],
        };
      });

      const intentDiffs: string[] = [];
      const schemaDiffs: string[] = [];
      const channelDiffs: string[] = [];
      const disagreements: string[] = [];
      const fieldDiffs: string[] = [];
      const known = new Map(KNOWN_DIFFERENCES.map((k) => [k.id, k]));
      const knownSeen = new Map<string, string>();
      const counts = new Map<string, { n: number; accepted: number; agree: number }>();
      let expOnly = 0;
      for (const [i, it] of all.entries()) {
        const m = moat[i]!;
        const std = server.standard[i]!;
        const exp = full[i]!;
        const expSays = exp.accepted ? 'accepted' : `rejected: ${exp.problems.join(' | ')}`;
        const moatSays = m.accepted ? 'accepted' : `rejected: ${m.problems.join(' | ')}`;
        if (exp.accepted !== (it.tc.intent === 'accept')) {
          intentDiffs.push(`${it.label} (${it.tc.why}): intended ${it.tc.intent}, server ${expSays}`);
        }
        // The schema walk against strict decoding, both channels.
        for (const ch of CHANNELS) {
          const v = server[ch][i]!;
          const u = unknownIn(ch, it);
          const strict = v.status === 400 ? v.fields : [];
          if (!same(u, strict)) {
            schemaDiffs.push(
              `${it.label} (${ch}): schema walk finds ${JSON.stringify(u)}, server ${JSON.stringify(strict)} (${v.problems.join(' | ')})`,
            );
          }
        }
        // Standard vs experimental.
        const stdUnknown = sorted(unknownIn('standard', it));
        const usesExperimental = !same(stdUnknown, unknownIn('experimental', it));
        if (usesExperimental) {
          expOnly++;
          if (std.accepted || std.status !== 400 || !same(std.fields, stdUnknown)) {
            channelDiffs.push(
              `${it.label}: uses ${JSON.stringify(stdUnknown)}, standard ${std.accepted ? 'accepts' : std.problems.join(' | ')}`,
            );
          }
        } else if (std.accepted !== exp.accepted || !same(std.fields, server.experimental[i]!.fields)) {
          channelDiffs.push(
            `${it.label}: standard ${std.accepted ? 'accepts' : std.problems.join(' | ')}; experimental ${expSays}`,
          );
        }
        // moat vs the experimental channel.
        const key = `${it.tc.kind}${usesExperimental ? ' (experimental fields)' : ''}`;
        const cnt = counts.get(key) ?? { n: 0, accepted: 0, agree: 0 };
        counts.set(key, cnt);
        cnt.n++;
        if (exp.accepted) cnt.accepted++;
        const k = known.get(it.tc.id);
        if (k !== undefined) {
          const got =
            exp.accepted && !m.accepted
              ? JSON.stringify(sorted(m.fields))
              : `server ${expSays}; moat ${moatSays}`;
          knownSeen.set(`${it.label}`, got === JSON.stringify(sorted(k.moat)) ? 'as listed' : got);
          continue;
        }
        if (exp.accepted !== m.accepted) {
          disagreements.push(
            `${it.label} (${it.tc.why}):\n    API server: ${expSays}\n    moat:       ${moatSays}`,
          );
          continue;
        }
        if (!exp.accepted) {
          const sf = sorted(exp.fields);
          const mf = sorted(m.fields);
          const extra = mf.filter((f) => !sf.includes(f));
          const ok = exp.celSkipped
            ? sf.every((f) => mf.includes(f)) && extra.every((f) => m.celFields.includes(f))
            : same(sf, mf);
          if (!ok) {
            fieldDiffs.push(
              `${it.label} (${it.tc.why}): server blames ${JSON.stringify(sf)}${exp.celSkipped ? ' (CEL skipped)' : ''}, moat ${JSON.stringify(mf)}\n    API server: ${expSays}\n    moat:       ${moatSays}`,
            );
            continue;
          }
        }
        cnt.agree++;
      }

      for (const [key, v] of [...counts].sort()) {
        t.diagnostic(
          `${key}: ${v.n} objects (server accepts ${v.accepted}, rejects ${v.n - v.accepted}); moat agrees on ${v.agree}`,
        );
      }
      t.diagnostic(
        `${all.length} objects from ${CORPUS.length} cases (moat validate over ${groups.length} directories); ${expOnly} use experimental-only fields; ${knownSeen.size} known differences`,
      );
      for (const [label, got] of knownSeen) t.diagnostic(`known difference ${label}: ${got}`);
      const lists = { cliDiffs, schemaDiffs, intentDiffs, channelDiffs, disagreements, fieldDiffs };
      for (const [name, list] of Object.entries(lists)) for (const x of list) t.diagnostic(`${name}: ${x}`);
      assert.deepEqual(cliDiffs, [], 'moat validate -f DIR vs the loader');
      assert.deepEqual(schemaDiffs, [], 'the schema walk vs strict decoding');
      assert.deepEqual(intentDiffs, [], 'cases whose intent the server does not share');
      assert.deepEqual(channelDiffs, [], 'standard vs experimental channel');
      assert.deepEqual(disagreements, [], 'accept/reject disagreements');
      assert.deepEqual(fieldDiffs, [], 'rejected by both, but for different fields');
      // Every known difference is still one, exactly as listed (else the list is stale).
      const expectKnown = all.filter((it) => known.has(it.tc.id)).map((it) => [it.label, 'as listed']);
      assert.deepEqual([...knownSeen].sort(), expectKnown.sort(), 'known differences');
      assert.ok(expOnly > 0, 'no case uses experimental-only fields: is the standard channel compared?');
    } finally {
      await c.stop();
      await rm(dir, { recursive: true, force: true });
    }
  },
);
