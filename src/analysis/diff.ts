// `moat diff`: the connectivity a change opens and closes. Pure. Both snapshots' matrices are
// computed (computeMatrix, on the union of the probes the pods of either declare) and compared cell
// by cell for the pods present in both; each changed cell is then explained by the evaluator's
// verdicts on both sides of the change: which side (egress of the source, ingress of the
// destination) flipped, and the rule that now admits it or the policy or admin rule that now denies
// it. Pods present in one snapshot only are listed apart (their cells are not a policy change).
import type { Pod, Protocol, Snapshot } from '../model/types.js';
import { podKey } from '../model/types.js';
import { evaluateTraced, type SideVerdict } from '../policy/evaluate.js';
import { computeMatrix, declaredProbes, matrixPods, sortProbes, type Probe } from './matrix.js';

export interface RuleRef {
  readonly kind: string;
  readonly namespace?: string;
  readonly name: string;
  readonly direction?: 'ingress' | 'egress';
  /** Index into the policy's ingress or egress rules; absent when the policy as a whole is meant. */
  readonly rule?: number;
}

export interface Change {
  readonly from: string;
  readonly to: string;
  readonly protocol: Protocol;
  readonly port: number;
  readonly change: 'opened' | 'closed';
  /** The side(s) whose answer flipped. */
  readonly sides: readonly ('egress' | 'ingress')[];
  /** e.g. "ingress: allowed by NetworkPolicy api/backend ingress rule 1 (was: ... no rule allows the flow)". */
  readonly cause: string;
  /** The rules (or policies) that cause it: what admits an opened flow, what denies a closed one. */
  readonly rules: readonly RuleRef[];
}

export interface DiffResult {
  readonly probes: readonly Probe[];
  readonly opened: readonly Change[];
  readonly closed: readonly Change[];
  /** Pods in the new snapshot only / the old one only (by "ns/name"). */
  readonly added: readonly string[];
  readonly removed: readonly string[];
}

interface Described {
  readonly text: string;
  readonly rules: RuleRef[];
}

/** Why a side allows or denies, from the verdict: the deciding rule, or the isolating policies. */
function describeSide(v: SideVerdict): Described {
  const admin = v.tiers.find(
    (t) => t.admin !== undefined && t.answer !== 'Pass' && t.answer !== 'None',
  )?.admin;
  const np = (p: { namespace: string; name: string }): RuleRef => ({
    kind: 'NetworkPolicy',
    namespace: p.namespace,
    name: p.name,
  });
  switch (v.reason) {
    case 'allowed-by-rule':
      return {
        text: `allowed by ${v.matches.map((m) => `NetworkPolicy ${m.policy.namespace}/${m.policy.name} ${m.direction} rule ${m.rule}`).join(', ')}`,
        rules: v.matches.map((m) => ({ ...np(m.policy), direction: m.direction, rule: m.rule })),
      };
    case 'no-rule-matched':
      return {
        text: `${v.subject ?? '?'} is isolated for ${v.direction} by ${v.isolatedBy.map((p) => `${p.namespace}/${p.name}`).join(', ')} and no rule allows it`,
        rules: v.isolatedBy.map(np),
      };
    case 'admin-allow':
    case 'admin-deny':
    case 'baseline-allow':
    case 'baseline-deny':
      if (admin === undefined) return { text: v.reason, rules: [] };
      return {
        text: `${admin.action} by ${admin.kind} ${admin.name} ${v.direction} rule ${admin.rule}${admin.ruleName !== '' ? ` (${admin.ruleName})` : ''}`,
        rules: [{ kind: admin.kind, name: admin.name, direction: v.direction, rule: admin.rule }],
      };
    case 'not-isolated':
      return { text: `no policy isolates ${v.subject ?? '?'} for ${v.direction}`, rules: [] };
    case 'address-conflict':
      return { text: `${v.subject ?? '?'}'s address is another live pod's too (fail-closed)`, rules: [] };
    default:
      return { text: v.reason, rules: [] };
  }
}

function explain(
  oldSnap: Snapshot,
  newSnap: Snapshot,
  from: readonly [Pod, Pod],
  to: readonly [Pod, Pod],
  probe: Probe,
  opened: boolean,
): Pick<Change, 'sides' | 'cause' | 'rules'> {
  const flow = (src: Pod, dst: Pod) =>
    ({ src: { kind: 'pod', pod: src }, dst: { kind: 'pod', pod: dst }, ...probe }) as const;
  const before = evaluateTraced(oldSnap, flow(from[0], to[0])).verdict;
  const after = evaluateTraced(newSnap, flow(from[1], to[1])).verdict;
  const sides = (['egress', 'ingress'] as const).filter((d) => before[d].allowed !== after[d].allowed);
  const parts: string[] = [];
  const rules: RuleRef[] = [];
  for (const d of sides) {
    const now = describeSide(after[d]);
    const was = describeSide(before[d]);
    parts.push(`${d}: ${now.text} (was: ${was.text})`);
    // What causes it: what admits an opened flow (or the isolation that was lifted), what denies a
    // closed one.
    rules.push(...(opened ? (now.rules.length > 0 ? now.rules : was.rules) : now.rules));
  }
  return { sides, cause: parts.join('; '), rules };
}

export function diffSnapshots(oldSnap: Snapshot, newSnap: Snapshot): DiffResult {
  const oldPods = matrixPods(oldSnap);
  const newPods = matrixPods(newSnap);
  const probes = sortProbes([...declaredProbes(oldPods), ...declaredProbes(newPods)]);
  const a = computeMatrix(oldSnap, { ports: probes });
  const b = computeMatrix(newSnap, { ports: probes });
  const ia = new Map(a.pods.map((k, i) => [k, i]));
  const ib = new Map(b.pods.map((k, i) => [k, i]));
  const common = a.pods.filter((k) => ib.has(k));
  const podA = new Map(oldPods.map((p) => [podKey(p), p]));
  const podB = new Map(newPods.map((p) => [podKey(p), p]));
  const opened: Change[] = [];
  const closed: Change[] = [];
  a.probes.forEach((pa, pi) => {
    const pb = b.probes[pi]!;
    const na = a.pods.length;
    const nb = b.pods.length;
    for (const f of common) {
      for (const t of common) {
        const was = pa.cells[ia.get(f)! * na + ia.get(t)!] === 1;
        const now = pb.cells[ib.get(f)! * nb + ib.get(t)!] === 1;
        if (was === now) continue;
        const probe = { port: pa.port, protocol: pa.protocol };
        const why = explain(
          oldSnap,
          newSnap,
          [podA.get(f)!, podB.get(f)!],
          [podA.get(t)!, podB.get(t)!],
          probe,
          now,
        );
        (now ? opened : closed).push({ from: f, to: t, ...probe, change: now ? 'opened' : 'closed', ...why });
      }
    }
  });
  const order = (x: Change, y: Change) =>
    x.from.localeCompare(y.from) ||
    x.to.localeCompare(y.to) ||
    x.port - y.port ||
    x.protocol.localeCompare(y.protocol);
  return {
    probes,
    opened: opened.sort(order),
    closed: closed.sort(order),
    added: b.pods.filter((k) => !ia.has(k)),
    removed: a.pods.filter((k) => !ib.has(k)),
  };
}

/** Changes of one pod pair with the same cause, ports listed together. */
export interface ChangeGroup {
  readonly from: string;
  readonly to: string;
  readonly ports: readonly string[];
  readonly cause: string;
}

export function groupChanges(changes: readonly Change[]): ChangeGroup[] {
  const out = new Map<string, { from: string; to: string; ports: string[]; cause: string }>();
  for (const c of changes) {
    const k = `${c.from}\u0000${c.to}\u0000${c.cause}`;
    const g = out.get(k);
    if (g) g.ports.push(`${c.protocol}/${c.port}`);
    else out.set(k, { from: c.from, to: c.to, ports: [`${c.protocol}/${c.port}`], cause: c.cause });
  }
  return [...out.values()];
}

export function formatDiffText(d: DiffResult): string {
  const out: string[] = [];
  for (const [title, list] of [
    ['opened', d.opened],
    ['closed', d.closed],
  ] as const) {
    if (list.length === 0) continue;
    const groups = groupChanges(list);
    const pairs = new Set(groups.map((g) => `${g.from} ${g.to}`)).size;
    out.push(
      `${title}: ${list.length} port${list.length > 1 ? 's' : ''} in ${pairs} pod pair${pairs > 1 ? 's' : ''}`,
    );
    for (const g of groups) {
      out.push(`  ${g.from} -> ${g.to}  ${g.ports.join(', ')}`);
      out.push(`    ${g.cause}`);
    }
  }
  if (d.added.length > 0) out.push(`pods only in --new (not compared): ${d.added.join(', ')}`);
  if (d.removed.length > 0) out.push(`pods only in --old (not compared): ${d.removed.join(', ')}`);
  if (d.opened.length === 0 && d.closed.length === 0) {
    out.unshift(`no connectivity change (${d.probes.length} ports probed)`);
  }
  return `${out.join('\n')}\n`;
}

const mdCell = (s: string) => s.replace(/\|/g, '\\|');

export function formatDiffMarkdown(d: DiffResult): string {
  const out: string[] = [];
  for (const [title, list] of [
    ['Opened', d.opened],
    ['Closed', d.closed],
  ] as const) {
    if (list.length === 0) continue;
    out.push(
      `### ${title} (${list.length})`,
      '',
      '| from | to | ports | cause |',
      '| --- | --- | --- | --- |',
    );
    for (const g of groupChanges(list)) {
      out.push(`| ${mdCell(g.from)} | ${mdCell(g.to)} | ${g.ports.join(', ')} | ${mdCell(g.cause)} |`);
    }
    out.push('');
  }
  if (d.opened.length === 0 && d.closed.length === 0)
    out.push(`No connectivity change (${d.probes.length} ports probed).`, '');
  if (d.added.length > 0) out.push(`Pods only in the new input (not compared): ${d.added.join(', ')}`, '');
  if (d.removed.length > 0)
    out.push(`Pods only in the old input (not compared): ${d.removed.join(', ')}`, '');
  return out.join('\n');
}
